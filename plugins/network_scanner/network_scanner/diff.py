"""ndiff-style comparison of two scans: what opened, what closed, what changed.

Only what both scans looked at is compared: a port scanned in one and not in the other
is neither "new" nor "closed" (ndiff reports those as changes; here they would be
noise from a changed profile), and a finding only a check one scan left out could make
(TLS checks, service detection) is neither new nor gone. A change is one of:

* ``opened``: open now, not open before (closed or filtered);
* ``closed``: open before, closed or filtered now;
* ``service``: open in both, but the service, product or version differs
  (``OpenSSH 8.9p1`` -> ``OpenSSH 9.6p1``);
* ``certificate``: the TLS leaf certificate changed (its SHA-256 fingerprint);
* ``host-address``: a name now resolves to another pinned address;
* ``finding-new`` / ``finding-gone``: a finding appeared or disappeared.
"""

from __future__ import annotations

from typing import Any

from network_scanner.ports import parse_ports

KINDS = ("opened", "closed", "service", "certificate", "host-address", "finding-new",
         "finding-gone")


def _label(service: dict[str, Any] | None) -> str:
    if not service:
        return ""
    parts = [service.get("name") or "", service.get("product") or "",
             service.get("version") or ""]
    return " ".join(p for p in parts if p)


def _fingerprint(port: dict[str, Any]) -> str | None:
    tls = port.get("tls") or {}
    chain = tls.get("chain") or []
    return chain[0].get("sha256") if chain else None


def _checked(scan: dict[str, Any]) -> tuple[bool, bool]:
    """Whether ``scan`` detected services, and whether it checked TLS (which needs the
    services found); an imported scan says neither: taken as both."""
    options = scan.get("options") or {}
    detect = bool(options.get("detect", True))
    return detect, detect and bool(options.get("tls", True))


def diff_scans(old: dict[str, Any], new: dict[str, Any]) -> dict[str, Any]:
    """The changes from ``old`` to ``new`` (two scan dicts) and a one-line summary."""
    common_ports = set(parse_ports(old["scanned_ports"])) & set(
        parse_ports(new["scanned_ports"]))
    old_hosts = {h["address"] for h in old["hosts"]}
    new_hosts = {h["address"] for h in new["hosts"]}
    both = old_hosts & new_hosts
    before = {(p["address"], p["port"]): p for p in old["ports"]}
    after = {(p["address"], p["port"]): p for p in new["ports"]}
    changes: list[dict[str, Any]] = []

    def add(kind: str, address: str, port: int | None, was: str | None, now: str | None,
            detail: str) -> None:
        changes.append({"kind": kind, "address": address, "port": port, "old": was,
                        "new": now, "detail": detail})

    for key in sorted(set(before) | set(after), key=lambda k: (k[0], k[1])):
        address, port = key
        if address not in both or port not in common_ports:
            continue
        was, now = before.get(key), after.get(key)
        if (was is None and old.get("truncated")) or (now is None and new.get("truncated")):
            continue  # not listed because the listing was cut: its state is unknown
        was_state = was["state"] if was else "closed"
        now_state = now["state"] if now else "closed"
        if now_state == "open" and was_state != "open":
            what = _label(now.get("service") if now else None) or "service unknown"
            add("opened", address, port, was_state, "open",
                f"{address}:{port} is open now ({what})")
        elif was_state == "open" and now_state != "open":
            what = _label(was.get("service") if was else None) or "open"
            add("closed", address, port, "open", now_state,
                f"{address}:{port} is {now_state} now (was {what})")
        elif was and now and was_state == "open":
            old_label, new_label = _label(was.get("service")), _label(now.get("service"))
            if old_label and new_label and old_label != new_label:
                add("service", address, port, old_label, new_label,
                    f"{address}:{port}: {old_label} -> {new_label}")
            old_fp, new_fp = _fingerprint(was), _fingerprint(now)
            if old_fp and new_fp and old_fp != new_fp:
                add("certificate", address, port, old_fp[:16], new_fp[:16],
                    f"{address}:{port}: the TLS certificate changed")
    old_resolved, new_resolved = old.get("resolved") or {}, new.get("resolved") or {}
    for name in sorted(set(old_resolved) & set(new_resolved)):
        if old_resolved[name] != new_resolved[name]:
            add("host-address", new_resolved[name], None, old_resolved[name],
                new_resolved[name], f"{name} resolves to {new_resolved[name]} now "
                                    f"(was {old_resolved[name]})")

    # A TLS check switched off in one scan made every TLS finding of the other "gone"
    # (or "new"), as if fixed: those are not compared.
    (old_detect, old_tls), (new_detect, new_tls) = _checked(old), _checked(new)

    def compared(rule: str) -> bool:
        return old_tls and new_tls if rule.startswith("tls-") else old_detect and new_detect

    def finding_keys(scan: dict[str, Any]) -> dict[tuple[str, int, str], dict[str, Any]]:
        return {(f["address"], f["port"], f["rule"]): f for f in scan.get("findings", [])
                if f["address"] in both and f["port"] in common_ports
                and compared(f["rule"])}

    old_f, new_f = finding_keys(old), finding_keys(new)
    for fkey in sorted(set(new_f) - set(old_f)):
        f = new_f[fkey]
        add("finding-new", f["address"], f["port"], None, f["severity"],
            f"{f['address']}:{f['port']}: {f['title']} ({f['confidence']})")
    for fkey in sorted(set(old_f) - set(new_f)):
        f = old_f[fkey]
        add("finding-gone", f["address"], f["port"], f["severity"], None,
            f"{f['address']}:{f['port']}: no longer {f['title']}")
    counts = {kind: sum(1 for c in changes if c["kind"] == kind) for kind in KINDS}
    words = [f"{n} {kind.replace('-', ' ')}" for kind, n in counts.items() if n]
    return {"old": old["id"], "new": new["id"], "changes": changes, "counts": counts,
            "summary": ", ".join(words) if words else "no changes",
            "hosts_added": sorted(new_hosts - old_hosts),
            "hosts_removed": sorted(old_hosts - new_hosts)}
