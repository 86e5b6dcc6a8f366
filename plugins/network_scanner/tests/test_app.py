"""The plugin in the real app: 422/403 before anything is sent, a scan as a job with live
events, exports, nmap XML import, and a profile whose rescan finds a change and raises a
v1 notification to the logged-in user."""

from __future__ import annotations

import asyncio
import csv
import io
import re
from pathlib import Path
from typing import Any

import pytest
from network_scanner.testing import (
    closed_port,
    greeter,
    http_server,
    listener,
    reserved_port,
    running_app,
    silent,
    wait_job,
)

from plexichat_desktop.plugins.sse import next_event, read_events

FAST = {"connect_timeout": 0.3, "probe_timeout": 0.5}


async def test_bad_input_is_a_4xx_naming_the_field(shared_app: Any, no_escape: list[str]
                                                   ) -> None:
    async with shared_app() as (client, _plugin, _server):
        # nmap takes seconds whatever it scans: its job runs while the rest is checked.
        nmap = await client.post("scans", json={"targets": "127.0.0.1", "ports": "80",
                                                "backend": "nmap"})
        assert nmap.status_code in (202, 409)
        if nmap.status_code == 409:
            assert nmap.json()["field"] == "backend"
        for spec in ("0", "65536", "1-", "a", "", "9-3", "top5000"):
            answer = await client.post("scans", json={"targets": "127.0.0.1", "ports": spec})
            assert answer.status_code == 422, (spec, answer.text)
            assert answer.json()["field"] == "ports", spec
            assert answer.json()["detail"].startswith("ports: ")
        for target, status in (("10.0.0.1", 403), ("::ffff:10.0.0.1", 403),
                               ("167772161", 403), ("0.0.0.0/0", 403), ("8.8.8.8", 403),
                               ("evil.example", 403), ("256.1.1.1", 422), ("", 422)):
            answer = await client.post("scans", json={"targets": target, "ports": "80"})
            assert answer.status_code == status, (target, answer.text)
            assert answer.json()["field"] == "targets"
        answer = await client.post("scans", json={"targets": "127.0.0.1", "ports": "80",
                                                  "concurrency": 0})
        assert answer.status_code == 422 and "concurrency" in answer.text
        check = (await client.post("check", json={"targets": "10.0.0.1, 127.0.0.1",
                                                  "ports": "a"})).json()
        assert check["ok"] is False
        assert {p["field"] for p in check["problems"]} == {"targets", "ports"}
        good = (await client.post("check", json={"targets": "localhost 0177.0.0.1",
                                                 "ports": "top100"})).json()
        assert good["ok"] and good["port_count"] == 100
        assert [h["address"] for h in good["hosts"]] == ["127.0.0.1"]
        for path, field in (("scans/nope", "scan_id"), ("scans/nope/export.csv", "scan_id"),
                            ("diff?old=a&new=b", "old")):
            answer = await client.get(path)
            assert answer.status_code == 404 and answer.json()["field"] == field
        answer = await client.post("import", json={"xml": "<nope/>"})
        assert answer.status_code == 422 and answer.json()["field"] == "xml"
        bomb = ('<?xml version="1.0"?><!DOCTYPE lolz [<!ENTITY lol "lol">'
                '<!ENTITY lol2 "&lol;&lol;&lol;&lol;">]><nmaprun>&lol2;</nmaprun>')
        answer = await client.post("import", json={"xml": bomb})
        assert answer.status_code == 422 and "unsafe" in answer.json()["detail"]
        if nmap.status_code == 202:
            await wait_job(client, nmap.json()["job"])
    assert no_escape == []


@pytest.mark.asyncio
async def test_a_scan_job_streams_progress_and_is_kept_and_exported(tmp_path: Path) -> None:
    async with running_app(tmp_path, **FAST) as (client, _plugin, _server), \
            listener(greeter(b"SSH-2.0-OpenSSH_9.6p1 Debian\r\n")) as ssh, \
            listener(http_server("nginx/1.25.3")) as web:
        shut = closed_port()
        ports = f"{ssh},{web},{shut}"
        async with client.stream("GET", "stream") as stream:
            events = read_events(stream)
            first = await next_event(events, "running")
            assert first == {"scans": []}
            answer = await client.post("scans", json={"targets": "localhost", "ports": ports,
                                                      "name": "mine", **FAST})
            assert answer.status_code == 202, answer.text
            job_id = answer.json()["job"]
            running = await next_event(events, "scan")
            assert running["state"] == "running" and running["port_count"] == 3
            grid = await next_event(events, "ports")
            assert grid["id"] == job_id and grid["items"]
            job = await wait_job(client, job_id)
        assert job["state"] == "succeeded", job
        assert job["result"]["counts"] == {"open": 2, "closed": 1, "filtered": 0}
        scan = (await client.get(f"scans/{job_id}")).json()
        assert scan["hosts"] == [{"address": "127.0.0.1", "name": "localhost",
                                  "why": "loopback"}]
        services = {p["port"]: p["service"]["product"] for p in scan["ports"]}
        assert services == {ssh: "OpenSSH", web: "nginx"}
        assert scan["diff"] is None  # the first scan of these targets
        listed = (await client.get("scans")).json()["scans"]
        assert listed[0]["id"] == job_id and listed[0]["open_ports"] == 2
        exported = await client.get(f"scans/{job_id}/export.json")
        assert exported.json()["id"] == job_id
        assert "attachment" in exported.headers["content-disposition"]
        rows = list(csv.DictReader(io.StringIO(
            (await client.get(f"scans/{job_id}/export.csv")).text)))
        assert {int(r["port"]) for r in rows} == {ssh, web}
        ssh_row = next(r for r in rows if int(r["port"]) == ssh)
        assert ssh_row["product"] == "OpenSSH" and ssh_row["version"] == "9.6p1"
        assert ssh_row["name"] == "localhost"

        # the same targets again: the diff against the first is attached
        again = (await client.post("scans", json={"targets": "localhost", "ports": ports,
                                                  **FAST})).json()
        await wait_job(client, again["job"])
        second = (await client.get(f"scans/{again['job']}")).json()
        assert second["diff"]["summary"] == "no changes"
        compared = await client.get("diff", params={"old": job_id, "new": again["job"]})
        assert compared.json()["summary"] == "no changes"
        for params, field in (({"old": "x", "new": again["job"]}, "old"),
                              ({"old": job_id, "new": "y"}, "new")):
            unknown = await client.get("diff", params=params)  # which one is said (audit)
            assert unknown.status_code == 404 and unknown.json()["field"] == field
        assert (await client.delete(f"scans/{job_id}")).status_code == 204
        assert (await client.get(f"scans/{job_id}")).status_code == 404


async def test_cancel_a_running_scan(shared_app: Any) -> None:
    # A silent service holds the scan in detection for the whole probe timeout (a port
    # left unanswered is no good here: with long timeouts the kernel may let it through).
    async with shared_app() as (client, _plugin, _server), \
            listener(silent()) as quiet:
        answer = await client.post("scans", json={
            "targets": "127.0.0.1", "ports": str(quiet), "probe_timeout": 30})
        job_id = answer.json()["job"]
        async with asyncio.timeout(10):
            while (await client.get(f"_host/jobs/{job_id}")).json()["state"] != "running":
                await asyncio.sleep(0.02)
        running = (await client.get("info")).json()["running"]
        assert [(r["job"], r["ports"]) for r in running] == [(job_id, [quiet])]
        assert (await client.post(f"_host/jobs/{job_id}/cancel")).status_code == 200
        job = await wait_job(client, job_id)
        assert job["state"] == "cancelled"
        assert (await client.get(f"scans/{job_id}")).status_code == 404
        assert (await client.get("info")).json()["running"] == []


@pytest.mark.asyncio
async def test_profile_rescan_detects_changes_and_notifies(tmp_path: Path) -> None:
    from api_integration_layer.testing import PASSWORD

    from plexichat_desktop.core.events import PluginEvent

    async with running_app(tmp_path, **FAST) as (client, plugin, server):
        layer = server.plugin("api_integration_layer")
        await layer.client.auth.register("ann", "ann@example.org", PASSWORD)
        await layer.client.auth.login("ann", PASSWORD)
        assert (await client.get("info")).json()["notify_user"] == "ann"
        bus = server.runtime.bus.subscribe(PluginEvent, name="test")
        banner = [b"SSH-2.0-OpenSSH_9.3p1\r\n"]
        later = reserved_port()  # closed now, a web server opens on it later
        web_port = later.getsockname()[1]
        async with listener(greeter(banner)) as ssh:
            spec = {"name": "laptop", "schedule": "every_5_minutes", "notify": True,
                    "options": {"targets": "127.0.0.1", "ports": f"{ssh},{web_port}",
                                **FAST}}
            bad = await client.post("profiles", json={**spec, "schedule": "sometimes"})
            assert bad.status_code == 422 and bad.json()["field"] == "schedule"
            bad = await client.post("profiles", json={**spec, "options": {
                **spec["options"], "ports": "a"}})
            assert bad.status_code == 422 and bad.json()["field"] == "options.ports"
            bad = await client.post("profiles", json={**spec, "options": {
                **spec["options"], "targets": "10.0.0.1"}})
            assert bad.status_code == 403 and bad.json()["field"] == "options.targets"
            created = await client.post("profiles", json=spec)
            assert created.status_code == 201, created.text
            profile = created.json()
            schedules = (await client.get("_host/schedules")).json()["schedules"]
            assert [s["name"] for s in schedules] == [profile["schedule_name"]]
            first = (await client.post(f"profiles/{profile['id']}/run")).json()
            job = await wait_job(client, first["job"])
            assert job["result"]["diff"] is None and job["result"]["counts"]["open"] == 1

            # What changed on the machine: SSH was upgraded, a web server came up.
            banner[0] = b"SSH-2.0-OpenSSH_9.8p1\r\n"
            async with listener(http_server("nginx/1.25.3"), sock=later):
                second = (await client.post(f"profiles/{profile['id']}/run")).json()
                job = await wait_job(client, second["job"])
        diff = job["result"]["diff"]
        changes = {(c["kind"], c["port"]): c for c in diff["changes"]}
        assert changes[("service", ssh)]["old"] == "ssh OpenSSH 9.3p1"
        assert changes[("service", ssh)]["new"] == "ssh OpenSSH 9.8p1"
        assert changes[("opened", web_port)]["detail"].endswith("(http nginx 1.25.3)")
        assert ("finding-gone", ssh) in changes  # 9.8p1 is past regreSSHion
        assert not any(kind == "closed" for kind, _ in changes)

        # Everything went away: two closed ports.
        third = (await client.post(f"profiles/{profile['id']}/run")).json()
        job = await wait_job(client, third["job"])
        kinds = {(c["kind"], c["port"]) for c in job["result"]["diff"]["changes"]}
        assert {("closed", ssh), ("closed", web_port)} <= kinds

        alerts = (await client.get("alerts")).json()["alerts"]
        assert [a["id"] for a in alerts] == [third["job"], second["job"]]
        notes = (await layer.client.notifications.list()).notifications
        titles = sorted(n.title for n in notes)
        assert len(titles) == 2, titles
        assert any("1 opened" in t and "1 service" in t for t in titles), titles
        assert any("2 closed" in t for t in titles), titles
        sent: list[Any] = []
        async with asyncio.timeout(10):  # the host's job.finished events come between
            while len(sent) < 2:
                event = await bus.get()
                if isinstance(event, PluginEvent) and event.name == "scan.changes":
                    sent.append(event)
        bus.close()
        assert [e.data["notified"] for e in sent] == ["ann", "ann"]
        assert sent[0].plugin_id == "network_scanner" and sent[0].data["profile"] == "laptop"
        assert plugin.profiles.view(profile["id"])["last_change"] == third["job"]

        # The schedule's own run (what the host's scheduler calls when it fires) scans.
        scheduler = plugin.ctx._scheduler
        before = len((await client.get("scans")).json()["scans"])
        await scheduler.get(profile["schedule_name"]).work()
        assert len((await client.get("scans")).json()["scans"]) == before + 1

        # Editing bumps the version (a new schedule name): the old schedule's runs return
        # without scanning; deleting retires the new one the same way.
        spec["schedule"] = "hourly"
        updated = await client.put(f"profiles/{profile['id']}", json=spec)
        assert updated.status_code == 200 and updated.json()["version"] == 2
        await scheduler.get(profile["schedule_name"]).work()
        assert len((await client.get("scans")).json()["scans"]) == before + 1
        assert (await client.delete(f"profiles/{profile['id']}")).status_code == 204
        await scheduler.get(updated.json()["schedule_name"]).work()
        assert len((await client.get("scans")).json()["scans"]) == before + 1
        assert (await client.get("profiles")).json()["profiles"] == []


async def test_nmap_xml_import_joins_the_history(shared_app: Any) -> None:
    xml = (Path(__file__).parent / "data" / "nmap-sample.xml").read_text()
    async with shared_app() as (client, _plugin, _server):
        answer = await client.post("import", json={"xml": xml, "name": "nightly"})
        assert answer.status_code == 201, answer.text
        summary = answer.json()
        assert summary == {"id": summary["id"], "hosts": 1, "ports": 3, "findings": 5}
        scan = (await client.get(f"scans/{summary['id']}")).json()
        assert scan["backend"] == "nmap-import" and scan["counts"]["closed"] == 997
        assert scan["scanned_ports"] == "1-1000" and scan["port_count"] == 1000
        rules = {f["rule"]: f["confidence"] for f in scan["findings"]}
        assert rules["openssh-regresshion"] == "banner match"
        assert rules["vsftpd-234-backdoor"] == "banner match"
        assert rules["ftp-cleartext"] == "confirmed"
        https = next(p for p in scan["ports"] if p["port"] == 443)
        assert https["service"]["name"] == "https" and https["service"]["tls"] is True


@pytest.mark.parametrize(("attribute", "bad"), [
    ('portid="22"', 'portid="x"'), ('portid="22"', 'portid="70000"'),
    ('portid="22"', 'portid="-5"'), ('count="997"', 'count="many"'),
    ('start="1733472000"', 'start="soon"'), ('start="1733472000"', 'start="nan"'),
    ('start="1733472000"', 'start="1e400"')])
async def test_an_imported_report_with_bad_numbers_is_422(shared_app: Any, attribute: str,
                                                          bad: str) -> None:
    """Review finding: a non-numeric portid, count or time in an imported report was a
    500, an impossible port (70000, -5) or a NaN/infinite time was stored."""
    xml = (Path(__file__).parent / "data" / "nmap-sample.xml").read_text()
    assert attribute in xml
    async with shared_app() as (client, _plugin, _server):
        before = (await client.get("scans")).json()["scans"]   # earlier tests' scans
        answer = await client.post("import", json={"xml": xml.replace(attribute, bad, 1)})
        assert answer.status_code == 422, answer.text
        assert answer.json()["field"] == "xml"
        assert (await client.get("scans")).json()["scans"] == before


async def test_csv_export_defuses_formulas_in_every_imported_cell(shared_app: Any) -> None:
    """Review finding: only the banner was defused; an imported report (untrusted) put
    formulas in the host name, product, version, service name and reason cells."""
    xml = (Path(__file__).parent / "data" / "nmap-sample.xml").read_text()
    evil = '=HYPERLINK(&quot;http://x&quot;)'
    for old, new in (('product="OpenSSH"', f'product="{evil}"'),
                     ('version="8.9p1"', 'version="+1+1"'),
                     ('name="ssh"', 'name="@SUM(A1)"'),
                     ('reason="syn-ack"', 'reason="-2+3"')):
        assert old in xml, old
        xml = xml.replace(old, new, 1)
    xml = re.sub(r'<hostname name="[^"]*"', f'<hostname name="{evil}"', xml, count=1)
    async with shared_app() as (client, _plugin, _server):
        answer = await client.post("import", json={"xml": xml})
        assert answer.status_code == 201, answer.text
        text = (await client.get(f"scans/{answer.json()['id']}/export.csv")).text
        rows = list(csv.reader(io.StringIO(text)))[1:]
        assert rows and any("HYPERLINK" in cell for row in rows for cell in row)
        for row in rows:
            for cell in row:
                assert cell[:1] not in ("=", "+", "-", "@"), row


async def test_scans_running_at_once_are_capped(shared_app: Any) -> None:
    """Review finding: any number of scans could run at once, each with its own pool of
    up to 2000 sockets; a fifth concurrent one is a 429 now (profiles included)."""
    from network_scanner import MAX_RUNNING_SCANS

    async with shared_app() as (client, plugin, _server):
        for n in range(MAX_RUNNING_SCANS):  # scans in progress, as the page would see them
            plugin.running[f"busy{n}"] = {"job": f"busy{n}"}
        answer = await client.post("scans", json={"targets": "127.0.0.1", "ports": "1"})
        assert answer.status_code == 429 and answer.json()["field"] == "scans", answer.text
        made = await client.post("profiles", json={"name": "p", "options": {
            "targets": "127.0.0.1", "ports": "1"}})
        assert made.status_code == 201, made.text
        again = await client.post(f"profiles/{made.json()['id']}/run")
        assert again.status_code == 429
        plugin.running.clear()
        started = await client.post("scans", json={"targets": "127.0.0.1", "ports": "1",
                                                   "detect": False, "tls": False})
        assert started.status_code == 202
        await wait_job(client, started.json()["job"])
