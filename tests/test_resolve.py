from plexichat_desktop.plugins.resolve import Node, resolve


def nodes(*items):
    return {n.id: n for n in items}


def n(pid, requires=None, version="1.0.0", startable=True, state="validated"):
    return Node(pid, version, requires or {}, startable, state)


def test_dependencies_start_first():
    order, failed = resolve(nodes(n("c", {"b": ""}), n("b", {"a": ">=1"}), n("a")))
    assert failed == {}
    assert order.index("a") < order.index("b") < order.index("c")


def test_missing_dependency():
    _, failed = resolve(nodes(n("a", {"ghost": ">=1"})))
    assert failed == {"a": "requires plugin 'ghost', which is not installed"}


def test_version_conflict_names_both_versions():
    _, failed = resolve(nodes(n("a", {"b": ">=2,<3"}), n("b", version="1.4.0")))
    assert failed["a"] == "requires 'b' >=2,<3, but version 1.4.0 is installed"


def test_disabled_dependency_and_cascade():
    _, failed = resolve(nodes(n("a", {"b": ""}), n("b", {"c": ""}),
                              n("c", startable=False, state="disabled")))
    assert failed["b"] == "requires 'c', which is disabled"
    assert failed["a"].startswith("requires 'b', which is failed (requires 'c'")


def test_cycle_is_named_and_others_still_start():
    order, failed = resolve(nodes(n("a", {"b": ""}), n("b", {"a": ""}), n("free"),
                                  n("after", {"a": ""})))
    assert failed["a"].startswith("dependency cycle: ")
    assert {"a", "b"} <= set(failed["a"].removeprefix("dependency cycle: ").split(" -> "))
    assert failed["b"] == failed["a"]
    assert "after" in failed and order == ["free"]


def test_prerelease_versions_can_satisfy_ranges():
    _, failed = resolve(nodes(n("a", {"b": ">=1.0"}), n("b", version="1.1.0rc1")))
    assert failed == {}
