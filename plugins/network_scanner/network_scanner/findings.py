"""Findings from what a scan saw, against the shipped offline rules (``rules.yaml``).

Two kinds, and each finding says which (the practitioners' warning: a vulnerability in a
banner is not a finding until it is checked):

* ``banner match``: a product and version announced by the service fall in an
  advisory's affected range. Distributions backport fixes without changing the version
  they announce, so this is a lead to check, not a proof;
* ``confirmed``: a probe showed the problem itself (Redis answered ``PING`` without a
  password, a telnet or FTP greeting arrived, a directory listing came back, a handshake
  with TLS 1.0 or a weak cipher completed, the certificate has expired ...).

Severity comes from the rule's CVSS 3.x vector (computed with the ``cvss`` package),
so a score is never typed in by hand.
"""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass
from functools import cache
from pathlib import Path
from typing import Any

import yaml
from cvss import CVSS3

CONFIRMED, BANNER = "confirmed", "banner match"
SEVERITY_ORDER = {"critical": 0, "high": 1, "medium": 2, "low": 3, "info": 4}


@dataclass
class Finding:
    address: str
    port: int
    rule: str
    title: str
    severity: str
    score: float | None
    cvss: str | None
    cve: str | None
    confidence: str
    evidence: str
    advice: str

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class Rule:
    id: str
    service: str
    product: re.Pattern[str]
    versions: tuple[dict[str, Any], ...]
    title: str
    cve: str | None
    cvss: str
    score: float
    severity: str
    advice: str


def _score(vector: str, where: str) -> tuple[float, str]:
    try:
        cvss = CVSS3(vector)
    except Exception as exc:  # the cvss package raises its own error types
        raise ValueError(f"rules.yaml {where}: bad CVSS vector {vector!r}: {exc}") from None
    return float(cvss.base_score), str(cvss.severities()[0]).lower()


@cache
def load_rules() -> tuple[tuple[Rule, ...], dict[str, dict[str, Any]]]:
    """The advisories and the check texts, validated (a bad rule fails loudly)."""
    data = yaml.safe_load(Path(__file__).with_name("rules.yaml").read_text("utf-8"))
    rules: list[Rule] = []
    for item in data["rules"]:
        score, severity = _score(item["cvss"], item["id"])
        for rng in item["versions"]:
            if not set(rng) <= {"from", "below", "only"} or not rng:
                raise ValueError(f"rules.yaml {item['id']}: bad version range {rng}")
        rules.append(Rule(item["id"], item["service"],
                          re.compile(f"(?i){item['product']}"), tuple(item["versions"]),
                          item["title"], item.get("cve"), item["cvss"], score, severity,
                          item["advice"]))
    checks: dict[str, dict[str, Any]] = {}
    for key, item in data["checks"].items():
        entry = dict(item)
        if "cvss" in item:
            entry["score"], entry["severity"] = _score(item["cvss"], key)
        else:
            entry["score"], entry["cvss"] = None, None
        checks[key] = entry
    return tuple(rules), checks


def version_key(text: str) -> tuple[tuple[int, int | str], ...]:
    """A sortable key for versions like ``8.9p1``, ``2.4.49``, ``9.3p2``: numbers compare
    as numbers, letters as text, and ``9.8`` < ``9.8p1``."""
    parts = re.findall(r"\d+|[a-zA-Z]+", text)
    return tuple((0, int(p)) if p.isdigit() else (1, p.lower()) for p in parts)


def in_range(version: str, ranges: tuple[dict[str, Any], ...]) -> bool:
    key = version_key(version)
    for rng in ranges:
        if "only" in rng:
            if version in [str(v) for v in rng["only"]]:
                return True
            continue
        low = rng.get("from")
        high = rng.get("below")
        if (low is None or key >= version_key(str(low))) and (
                high is None or key < version_key(str(high))):
            return True
    return False


def _check(key: str, address: str, port: int, evidence: str) -> Finding:
    _, checks = load_rules()
    item = checks[key]
    return Finding(address, port, key, item["title"], item.get("severity") or "info",
                   item["score"], item["cvss"], None, CONFIRMED, evidence[:500],
                   item["advice"])


def evaluate(port: dict[str, Any]) -> list[Finding]:
    """The findings for one scanned port (a port dict of a scan result)."""
    if port.get("state") != "open":
        return []
    address, number = port["address"], port["port"]
    service = port.get("service") or {}
    name = service.get("name")
    product = service.get("product") or ""
    version = service.get("version") or ""
    facts = service.get("facts") or {}
    found: list[Finding] = []
    rules, _ = load_rules()
    if product and version:
        for rule in rules:
            base = "http" if name == "https" else name
            if rule.service == base and rule.product.fullmatch(product) and in_range(
                    version, rule.versions):
                found.append(Finding(
                    address, number, rule.id, rule.title, rule.severity, rule.score,
                    rule.cvss, rule.cve, BANNER,
                    f"{product} {version} announced: {service.get('banner', '')}"[:500],
                    rule.advice))
    if name == "redis" and facts.get("redis_auth") is False:
        found.append(_check("redis-no-auth", address, number,
                            "PING answered +PONG without AUTH"))
    if name == "telnet":
        found.append(_check("telnet-cleartext", address, number,
                            "telnet option negotiation received"))
    if name == "ftp" and not service.get("tls"):
        found.append(_check("ftp-cleartext", address, number,
                            f"greeting: {service.get('banner', '')}"))
    if facts.get("dir_listing"):
        found.append(_check("http-dir-listing", address, number,
                            f"GET / returned a listing: {facts.get('http_title', '')}"))
    if facts.get("ssh_protocol_1"):
        found.append(_check("ssh-protocol-1", address, number, service.get("banner", "")))
    found.extend(_tls_findings(address, number, port.get("tls")))
    for item in found:
        _fix_severity(item)
    found.sort(key=lambda f: (SEVERITY_ORDER.get(f.severity, 9), -(f.score or 0)))
    return found


def _fix_severity(item: Finding) -> None:
    if item.severity == "none":
        item.severity = "info"


def _tls_findings(address: str, port: int, tls: dict[str, Any] | None) -> list[Finding]:
    if not tls or tls.get("error"):
        return []
    out: list[Finding] = []
    leaf = (tls.get("chain") or [{}])[0]
    if tls.get("expired"):
        out.append(_check("tls-expired", address, port,
                          f"notAfter {leaf.get('not_after')} ({leaf.get('subject')})"))
    if tls.get("not_yet_valid"):
        out.append(_check("tls-not-yet-valid", address, port,
                          f"notBefore {leaf.get('not_before')}"))
    if tls.get("expires_soon"):
        out.append(_check("tls-expires-soon", address, port,
                          f"{leaf.get('days_left')} days left (notAfter {leaf.get('not_after')})"))
    if tls.get("self_signed"):
        out.append(_check("tls-self-signed", address, port,
                          f"subject = issuer = {leaf.get('subject')}, signed by its own key"))
    elif tls.get("trusted") is False:
        out.append(_check("tls-untrusted", address, port,
                          f"verification: {tls.get('verify_error')}"))
    if tls.get("name_matches") is False:
        out.append(_check("tls-name-mismatch", address, port,
                          f"{tls.get('name_checked')} is not among "
                          f"{', '.join(leaf.get('names') or []) or 'no names'}"))
    old = [v for v in ("TLSv1.0", "TLSv1.1") if (tls.get("protocols") or {}).get(v)
           == "accepted"]
    if old:
        out.append(_check("tls-old-protocol", address, port,
                          f"handshake completed with {', '.join(old)}"))
    for key, item in (tls.get("weak_ciphers") or {}).items():
        if item.get("status") == "accepted":
            finding = _check("tls-weak-cipher", address, port,
                             f"{item.get('why')}: handshake completed with {item.get('cipher')}")
            finding.rule = f"tls-weak-cipher:{key}"
            out.append(finding)
    key_text = leaf.get("key") or ""
    rsa_bits = re.match(r"RSA (\d+)", key_text)
    if (rsa_bits and int(rsa_bits.group(1)) < 2048) or leaf.get("signature_hash") in (
            "md5", "sha1"):
        out.append(_check("tls-weak-key", address, port,
                          f"key {key_text}, signature {leaf.get('signature_hash')}"))
    return out


def summarize(findings: list[dict[str, Any]]) -> dict[str, int]:
    counts = {level: 0 for level in SEVERITY_ORDER}
    for item in findings:
        counts[item["severity"]] = counts.get(item["severity"], 0) + 1
    return counts
