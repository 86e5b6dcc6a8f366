"""Dependency order of plugins, with a precise reason for every plugin that cannot start."""

from __future__ import annotations

import graphlib
from collections.abc import Mapping
from dataclasses import dataclass

from packaging.specifiers import SpecifierSet
from packaging.version import Version


@dataclass(frozen=True)
class Node:
    """What the resolver needs to know of one plugin."""

    id: str
    version: str
    requires: Mapping[str, str]
    startable: bool  # False when disabled, failed or incompatible
    state: str = "validated"


def resolve(nodes: Mapping[str, Node]) -> tuple[list[str], dict[str, str]]:
    """Return (start order of the startable plugins, {plugin id: why it cannot start}).

    Missing dependencies, unsatisfied version ranges, dependencies that cannot start and
    cycles all fail the plugin; failures cascade to the plugins that need it.
    """
    failed: dict[str, str] = {}
    live = {pid for pid, node in nodes.items() if node.startable}
    changed = True
    while changed:
        changed = False
        for pid in sorted(live):
            reason = _dependency_problem(nodes[pid], nodes, live, failed)
            if reason:
                failed[pid] = reason
                live.discard(pid)
                changed = True
        if changed:
            continue
        graph = {pid: [d for d in nodes[pid].requires if d in live] for pid in live}
        try:
            order = list(graphlib.TopologicalSorter(graph).static_order())
        except graphlib.CycleError as exc:
            cycle: list[str] = exc.args[1]
            text = " -> ".join(cycle)
            for pid in set(cycle):
                failed[pid] = f"dependency cycle: {text}"
                live.discard(pid)
            changed = True
            continue
        return order, failed
    return [], failed  # pragma: no cover - the loop always returns


def _dependency_problem(node: Node, nodes: Mapping[str, Node], live: set[str],
                        failed: Mapping[str, str]) -> str | None:
    for dep_id, spec in sorted(node.requires.items()):
        dep = nodes.get(dep_id)
        if dep is None:
            return f"requires plugin '{dep_id}', which is not installed"
        # Why it cannot run comes first: the version of a broken plugin may be unknown.
        if dep_id not in live and not dep.startable:
            return f"requires '{dep_id}', which is {dep.state}"
        if spec and Version(dep.version) not in SpecifierSet(spec, prereleases=True):
            return f"requires '{dep_id}' {spec}, but version {dep.version} is installed"
        if dep_id not in live:
            why = failed.get(dep_id)
            state = "failed" if why else dep.state
            return f"requires '{dep_id}', which is {state}" + (f" ({why})" if why else "")
    return None
