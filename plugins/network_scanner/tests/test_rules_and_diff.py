"""Offline pieces: port specs, the shipped rules and signatures, version ranges, the
ndiff-style diff and the CSV export."""

from __future__ import annotations

import csv
import io
from typing import Any

import pytest
from network_scanner import to_csv
from network_scanner.diff import diff_scans
from network_scanner.findings import evaluate, in_range, load_rules, version_key
from network_scanner.nmap import NmapProblem, parse_xml
from network_scanner.ports import PortSpecError, compact, parse_ports, top_ports
from network_scanner.probes import Service, match, signatures


@pytest.mark.parametrize("spec, message", [
    ("0", "outside 1-65535"), ("65536", "outside 1-65535"), ("1-", "open range"),
    ("a", "is not a port"), ("", "no ports"), ("-5", "open range"), ("80-22", "backwards"),
    ("top0", "top needs"), ("top1001", "top needs"), ("22,,x", "is not a port"),
    ("\u0663", "is not a port"), ("top\u0663", "is not a port"),  # "٣": not ASCII digits
])
def test_bad_port_specs_name_the_field(spec: str, message: str) -> None:
    with pytest.raises(PortSpecError) as caught:
        parse_ports(spec)
    assert str(caught.value).startswith("ports: ") and message in str(caught.value)
    assert caught.value.status == 422


def test_port_specs_and_nmaps_top_lists() -> None:
    assert parse_ports("22, 80,443 20-21 22") == [20, 21, 22, 80, 443]
    assert len(parse_ports("all")) == 65535 and parse_ports("65535") == [65535]
    assert len(top_ports()) == 1000 and len(set(top_ports())) == 1000
    assert top_ports()[:5] == (80, 23, 443, 21, 22)  # nmap's most frequent first
    assert len(parse_ports("top100")) == 100 and 3389 in parse_ports("top20")
    assert compact(parse_ports("1-3,8,10-11")) == "1-3,8,10-11"
    with pytest.raises(PortSpecError, match="more than the 10"):
        parse_ports("1-11", max_ports=10)


def test_rules_and_signatures_load_and_score() -> None:
    rules, checks = load_rules()
    assert len(rules) >= 8 and all(r.cvss.startswith("CVSS:3.1/") for r in rules)
    regresshion = next(r for r in rules if r.id == "openssh-regresshion")
    assert (regresshion.score, regresshion.severity) == (8.1, "high")
    assert all(c.get("severity") or c["score"] is not None for c in checks.values())
    assert len(signatures()) > 20


@pytest.mark.parametrize("version, affected", [
    ("8.5p1", True), ("8.9p1", True), ("9.7p1", True), ("9.8p1", False), ("9.8", False),
    ("4.3p2", True), ("4.4p1", False), ("7.4p1", False),
])
def test_version_ranges(version: str, affected: bool) -> None:
    ranges = ({"below": "4.4"}, {"from": "8.5", "below": "9.8"})
    assert in_range(version, ranges) is affected
    assert version_key("9.8") < version_key("9.8p1") < version_key("9.10")


@pytest.mark.parametrize("probe, text, expected", [
    ("banner", "SSH-2.0-dropbear_2022.83\r\n", ("ssh", "Dropbear", "2022.83")),
    ("banner", "220 ProFTPD 1.3.5 Server (Debian)\r\n", ("ftp", "ProFTPD", "1.3.5")),
    ("banner", "220 mx.example.org ESMTP Postfix (Debian/GNU)\r\n", ("smtp", "Postfix", None)),
    ("banner", "+OK Dovecot ready.\r\n", ("pop3", "Dovecot", None)),
    ("banner", "J\x00\x00\x00\n8.0.36\x00rest", ("mysql", "MySQL", "8.0.36")),
    ("banner", "\xff\xfd\x18\xff\xfd\x20", ("telnet", None, None)),
    ("http-server", "Microsoft-IIS/10.0", ("http", "Microsoft IIS", "10.0")),
    ("http-server", "SimpleHTTP/0.6 Python/3.11.7", ("http", "Python http.server",
                                                     "3.11.7")),
])
def test_signatures(probe: str, text: str, expected: tuple[Any, ...]) -> None:
    service = Service()
    assert match(probe, text, service)
    assert (service.name, service.product, service.version) == expected


def scan(scan_id: str, ports: list[dict[str, Any]], scanned: str = "1-1000",
         resolved: dict[str, str] | None = None) -> dict[str, Any]:
    full = [{"address": "127.0.0.1", "state": "open", "service": None, "tls": None, **p}
            for p in ports]
    findings = [f.to_dict() for p in full for f in evaluate(p)]
    return {"id": scan_id, "hosts": [{"address": "127.0.0.1", "name": None, "why": "x"}],
            "ports": full, "scanned_ports": scanned, "findings": findings,
            "resolved": resolved or {}}


def svc(name: str, product: str, version: str) -> dict[str, Any]:
    return {"name": name, "product": product, "version": version, "banner": "", "facts": {}}


def test_diff_reports_what_ndiff_would_and_more() -> None:
    old = scan("a", [
        {"port": 22, "service": svc("ssh", "OpenSSH", "8.9p1")},
        {"port": 80, "service": svc("http", "nginx", "1.18.0")},
        {"port": 443, "tls": {"chain": [{"sha256": "aa" * 32}]}},
        {"port": 2000},  # outside the second scan's ports: not compared
        {"port": 800, "state": "filtered"},
    ], resolved={"nas.lan": "127.0.0.2"})
    new = scan("b", [
        {"port": 22, "service": svc("ssh", "OpenSSH", "9.8p1")},
        {"port": 443, "tls": {"chain": [{"sha256": "bb" * 32}]}},
        {"port": 631, "service": svc("ipp", "CUPS", "2.4")},
        {"port": 800},
    ], scanned="1-1024", resolved={"nas.lan": "127.0.0.3"})
    diff = diff_scans(old, new)
    got = {(c["kind"], c["port"]) for c in diff["changes"]}
    assert got == {("service", 22), ("closed", 80), ("certificate", 443), ("opened", 631),
                   ("opened", 800), ("host-address", None), ("finding-gone", 22)}
    closed = next(c for c in diff["changes"] if c["kind"] == "closed")
    assert closed["detail"] == "127.0.0.1:80 is closed now (was http nginx 1.18.0)"
    assert diff["counts"]["opened"] == 2
    assert diff["summary"].startswith("2 opened, 1 closed, 1 service, 1 certificate")
    assert diff_scans(new, new)["summary"] == "no changes"
    # A listing cut short (over 5,000 open/filtered ports) says nothing of unlisted ports.
    cut = {**new, "truncated": True}
    assert ("closed", 80) not in {(c["kind"], c["port"]) for c in diff_scans(old, cut)[
        "changes"]}


def test_findings_of_a_check_one_scan_left_out_are_not_compared() -> None:
    """Audit: a profile rescanned with TLS checks off reported every TLS finding of the
    scan before as "no longer" there (in Change alerts and the v1 notification), as if
    fixed; service detection off did the same to banner findings."""
    weak = {"port": 443, "service": svc("https", "x", "1"),
            "tls": {"chain": [{"sha256": "aa" * 32}], "self_signed": True,
                    "protocols": {"TLSv1.0": "accepted"}}}
    telnet = {"port": 23, "service": {**svc("telnet", "", ""), "product": None}}
    checked = scan("a", [weak, telnet])
    assert {f["rule"] for f in checked["findings"]} >= {"tls-self-signed",
                                                        "tls-old-protocol"}
    no_tls = {**scan("b", [{**weak, "tls": None}, telnet]),
              "options": {"detect": True, "tls": False}}
    for old, new in ((checked, no_tls), (no_tls, checked)):
        assert diff_scans(old, new)["summary"] == "no changes"
    no_detect = {**scan("c", [{"port": 443}, {"port": 23}]),
                 "options": {"detect": False, "tls": True}}
    assert diff_scans(checked, no_detect)["summary"] == "no changes"
    # Both with TLS checks on, a fix is a fix.
    fixed = {**scan("d", [{**weak, "tls": {"chain": [{"sha256": "aa" * 32}]}}, telnet]),
             "options": {"detect": True, "tls": True}}
    gone = {c["detail"] for c in diff_scans(checked, fixed)["changes"]}
    assert {d.split(": ", 1)[1] for d in gone} == {
        "no longer TLS certificate is self-signed", "no longer TLS 1.0/1.1 accepted"}


def test_csv_export_defuses_formulas() -> None:
    data = scan("c", [{"port": 21, "service": {**svc("ftp", "x", "1"),
                                               "banner": "=HYPERLINK(\"http://x\")"}}])
    data["started"] = 0
    rows = list(csv.DictReader(io.StringIO(to_csv(data))))
    assert rows[0]["banner"].startswith("'=")
    assert rows[0]["findings"] == "medium:ftp-cleartext(confirmed)"


def test_xml_that_is_not_an_nmap_report_is_refused() -> None:
    for text, message in (("<a/>", "not nmap's"), ("<nmaprun", "not well-formed"),
                          ('<!DOCTYPE x [<!ENTITY e SYSTEM "file:///etc/passwd">]>'
                           "<nmaprun>&e;</nmaprun>", "unsafe")):
        with pytest.raises(NmapProblem) as caught:
            parse_xml(text)
        assert message in str(caught.value) and caught.value.field == "xml"
