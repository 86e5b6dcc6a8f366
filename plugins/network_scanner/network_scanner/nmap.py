"""nmap as an optional back end (``nmap -sT -sV -oX -``) and nmap XML import.

The XML is parsed with defusedxml (an imported file is untrusted: no entity expansion,
no external entities). Running nmap, the scanner passes only the pinned addresses the
target policy admitted, with ``-n`` (no DNS) and ``-Pn`` (no ping: the policy already
decided), so nmap reaches nothing the built-in scanner would not.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import re
import shutil
from collections.abc import Callable
from typing import Any

import defusedxml.ElementTree as DET
from defusedxml import DefusedXmlException

MAX_XML = 50_000_000
MAX_STDERR = 64 * 1024


class NmapProblem(ValueError):
    def __init__(self, message: str, field: str = "xml", status: int = 422):
        self.field = field
        self.status = status
        super().__init__(message if message.startswith(field) else f"{field}: {message}")


def nmap_path() -> str | None:
    return shutil.which("nmap")


def _number(value: str | None, what: str, low: int = 0, high: int = 2**31) -> int:
    """An integer attribute of the report within ``low``..``high``; NmapProblem (422)
    otherwise (an imported file is untrusted: ``portid="x"`` was a 500)."""
    try:
        number = int((value or "0").strip())
    except ValueError:
        raise NmapProblem(f"{what} {str(value)[:40]!r} is not a number") from None
    if not low <= number <= high:
        raise NmapProblem(f"{what} {number} is outside {low}-{high}")
    return number


def _time(value: str | None, what: str) -> float:
    """A Unix time attribute (0 when absent); NmapProblem for text, NaN or infinity."""
    try:
        stamp = float((value or "0").strip())
    except ValueError:
        raise NmapProblem(f"{what} {str(value)[:40]!r} is not a time") from None
    if not math.isfinite(stamp) or not 0 <= stamp < 2**40:
        raise NmapProblem(f"{what} {str(value)[:40]!r} is not a time")
    return stamp


def parse_xml(text: str | bytes) -> dict[str, Any]:
    """An nmap XML report as ``{"hosts": [...], "ports": [...], "counts", "scanned" (the
    TCP ports nmap looked at, nmap's own spec), "args", "started", "finished",
    "version"}``; ports carry ``service`` like the built-in scanner's.
    Raises :class:`NmapProblem` (field ``xml``) for XML that is unsafe, broken or not
    an nmap report."""
    if len(text) > MAX_XML:
        raise NmapProblem(f"{len(text)} bytes is more than {MAX_XML}")
    try:
        root = DET.fromstring(text)
    except DefusedXmlException as exc:
        raise NmapProblem(f"refused unsafe XML ({type(exc).__name__})") from None
    except Exception as exc:  # ParseError and its relatives
        raise NmapProblem(f"not well-formed XML: {exc}") from None
    if root.tag != "nmaprun":
        raise NmapProblem(f"the root element is <{root.tag}>, not nmap's <nmaprun>")
    hosts: list[dict[str, Any]] = []
    ports: list[dict[str, Any]] = []
    counts = {"open": 0, "closed": 0, "filtered": 0}
    for host in root.iter("host"):
        address = None
        for addr in host.findall("address"):
            if addr.get("addrtype") in ("ipv4", "ipv6"):
                address = addr.get("addr")
                break
        if not address:
            continue
        names = [h.get("name") for h in host.findall("hostnames/hostname") if h.get("name")]
        hosts.append({"address": address, "name": names[0] if names else None,
                      "why": "imported"})
        for port in host.findall("ports/port"):
            if port.get("protocol", "tcp") != "tcp":
                continue
            state_el = port.find("state")
            state = state_el.get("state", "unknown") if state_el is not None else "unknown"
            state = {"open|filtered": "filtered", "closed|filtered": "filtered"}.get(state, state)
            number = _number(port.get("portid"), "portid", 1, 65535)
            svc = port.find("service")
            service = None
            if svc is not None:
                tunnel = svc.get("tunnel") == "ssl"
                name = svc.get("name")
                if tunnel and name == "http":
                    name = "https"
                service = {"name": name, "product": svc.get("product"),
                           "version": svc.get("version"), "extra": svc.get("extrainfo"),
                           "banner": "", "tls": tunnel or name in ("https", "ssl"),
                           "method": f"nmap:{svc.get('method', 'table')}", "facts": {}}
            ports.append({"address": address, "port": number, "state": state,
                          "reason": state_el.get("reason", "") if state_el is not None else "",
                          "rtt_ms": None, "service": service, "tls": None})
            if state in counts:
                counts[state] += 1
        for extra in host.findall("ports/extraports"):
            state = extra.get("state", "")
            if state in counts:
                counts[state] += _number(extra.get("count"), "extraports count", 0, 65535)
    if not hosts and root.find("host") is None and root.find("runstats") is None:
        raise NmapProblem("an <nmaprun> without hosts or run statistics")
    finished = root.find("runstats/finished")
    # What nmap looked at ("1-1000" or "22,80,443"), so a diff against this report knows
    # which unlisted ports were scanned (closed) and which were not scanned at all.
    scanned = ",".join(info.get("services", "") for info in root.findall("scaninfo")
                       if info.get("protocol", "tcp") == "tcp" and info.get("services"))
    return {"hosts": hosts, "ports": ports, "counts": counts, "scanned": scanned,
            "args": root.get("args", ""), "version": root.get("version", ""),
            "started": _time(root.get("start"), "start"),
            "finished": _time(finished.get("time"), "finished time")
            if finished is not None else None}


_PROGRESS = re.compile(rb'<taskprogress [^>]*task="([^"]+)"[^>]*percent="([\d.]+)"')


async def run_nmap(addresses: list[str], port_spec: str, *, timeout: float,
                   progress: Callable[[float, str], None] | None = None) -> dict[str, Any]:
    """Run ``nmap -sT -sV`` on ``addresses`` (pinned, already allowed) and parse its XML.

    ``progress(percent, task)`` follows nmap's ``--stats-every`` lines. Cancelling kills
    nmap. Raises :class:`NmapProblem` (field ``backend``) when nmap is missing or fails.
    """
    binary = nmap_path()
    if binary is None:
        raise NmapProblem("nmap is not installed; choose the built-in scanner",
                          field="backend", status=409)
    args = [binary, "-sT", "-sV", "-n", "-Pn", "--stats-every", "1s", "-oX", "-",
            "--host-timeout", f"{max(30, int(timeout * 100))}s",
            "--max-rtt-timeout", f"{max(50, int(timeout * 1000))}ms", "-p", port_spec,
            "--", *addresses]
    process = await asyncio.create_subprocess_exec(
        *args, stdin=asyncio.subprocess.DEVNULL, stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE)
    out = bytearray()
    err = bytearray()

    async def drain_stderr() -> None:
        # Read while stdout is read: nmap blocks once the stderr pipe (64 KiB) is full of
        # warnings, and would never finish stdout. Only the tail is kept for the message.
        assert process.stderr is not None
        while chunk := await process.stderr.read(65536):
            err.extend(chunk)
            del err[:-MAX_STDERR]

    try:
        assert process.stdout is not None and process.stderr is not None
        errors = asyncio.ensure_future(drain_stderr())
        try:
            while True:
                chunk = await process.stdout.read(65536)
                if not chunk:
                    break
                out.extend(chunk)
                if len(out) > MAX_XML:
                    raise NmapProblem(f"nmap wrote more than {MAX_XML} bytes of XML",
                                      field="backend", status=502)
                if progress is not None:
                    for task, percent in _PROGRESS.findall(chunk):
                        progress(float(percent), task.decode("latin-1"))
            await errors
        finally:
            errors.cancel()
        code = await process.wait()
    except BaseException:
        with contextlib.suppress(ProcessLookupError):
            process.kill()
        with contextlib.suppress(Exception):
            await asyncio.wait_for(process.wait(), 5)
        raise
    if code != 0:
        raise NmapProblem(f"nmap exited with {code}: "
                          f"{bytes(err).decode(errors='replace')[-500:]}",
                          field="backend", status=502)
    return parse_xml(bytes(out))
