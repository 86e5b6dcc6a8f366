"""Takes docs/security-toolkit.png (the vault with sample entries),
docs/security-toolkit-health.png (the health report, one fix applied) and
docs/security-toolkit-messages.png (keys, a contact's safety number, an encrypted
thread): the page in QtWebEngine offscreen, as the desktop window shows it, unlocked
through its own form.

Run from the repository root (it uses the project's GUI test fixtures):

    QT_QPA_PLATFORM=offscreen .venv/bin/python -m pytest -c pyproject.toml -p tests.conftest \\
        -p tests.gui.conftest plugins/security_toolkit/docs/screenshot.py -q -n 0 \\
        -p no:cacheprovider
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

import httpx

from plexichat_desktop.runtime import Runtime
from tests.gui.plugin_screenshots import docs_app, page_shots

HERE = Path(__file__).resolve().parent
MASTER = "Tr0ub4dor&3-horse"
SAMPLES = [
    ("Mail", "ann@example.org", "hunter22", "https://mail.example.org", "Personal", ["2fa"]),
    ("Forum", "ann_s", "hunter22", "https://forum.example.net", "Personal", []),
    ("Bank", "ann.smith", "Kt5$pQ1&nB7*yH3-ok", "https://bank.example", "Money", []),
    ("Tax office", "A-1234-55", "summer2019", "https://tax.example.gov", "Money", []),
    ("Work VPN", "asmith", "Wd3^cF6(jM0)sV8-vpn", "https://vpn.corp.example", "Work", ["vpn"]),
    ("Git server", "asmith", "correct-horse-battery-staple", "https://git.corp.example",
     "Work", []),
    ("Wi-Fi", "", "letmein123", "", "Home", []),
]


async def seed_messages(rt: Runtime, plugin: Any, client: httpx.AsyncClient) -> None:
    """Ann (the app's v1 session) and Bob (another install: a client and his own key)
    publish keys, Ann pins and verifies Bob, and they exchange two encrypted messages."""
    from api_integration_layer.client import ApiClient
    from api_integration_layer.testing import PASSWORD
    from security_toolkit import e2e

    layer = rt.plugins.by_id["api_integration_layer"].instance
    await layer.client.auth.register("ann", "ann@example.org", PASSWORD)
    await layer.client.auth.login("ann", PASSWORD)
    bob_key = e2e.new_private()
    async with ApiClient(rt.url + "api/v1") as bob:
        await bob.auth.register("bob", "bob@example.org", PASSWORD)
        await bob.auth.login("bob", PASSWORD)
        await bob.keys.publish(e2e.directory_text(e2e.parse_public(e2e.public_text(bob_key))))
        await client.post("keys/publish")
        pinned = (await client.post("contacts", json={"username": "bob"})).json()
        await client.put(f"contacts/{pinned['user_id']}", json={"verified": True})
        sent = await client.post(f"messages/{pinned['user_id']}", json={
            "text": "The new Wi-Fi password is in the vault; the old one is revoked."})
        assert sent.status_code == 201, sent.text
        ann_id = layer.client.user["id"]
        ann_public = (await client.get("keys")).json()["public_key"]
        reply = e2e.seal("Got it, thanks. Safety numbers matched on the call.", bob_key,
                         e2e.parse_public(ann_public), bob.user["id"], ann_id)
        await bob.messages.send(ann_id, reply, encrypted=True)


def test_screenshot(qapp: Any, qtbot: Any, home: Any, arun: Any, tmp_path: Path) -> None:
    pwned = tmp_path / "pwned-passwords.txt"
    pwned.write_text("".join(f"{hashlib.sha1(p.encode()).hexdigest().upper()}:{n}\n"
                             for p, n in (("hunter22", 18264), ("letmein123", 41022))))
    with docs_app(home, arun, tmp_path, plugin_settings={"security_toolkit": {
            "kdf_memory_kib": 8192, "kdf_time_cost": 1, "breach_list": str(pwned)}}) as rt:
        plugin = rt.plugins.by_id["security_toolkit"].instance

        async def seed() -> None:
            async with httpx.AsyncClient(
                    base_url=f"{rt.url}plugins/security_toolkit/api/", timeout=30,
                    headers={"Authorization": f"Bearer {rt.token}"}) as client:
                await client.post("vault/create", json={"password": MASTER})
                for title, user, password, url, folder, tags in SAMPLES:
                    answer = await client.post("entries", json={
                        "title": title, "username": user, "password": password, "url": url,
                        "folder": folder, "tags": tags})
                    assert answer.status_code == 201, answer.text
                entries = plugin.session.vault().payload["entries"]
                mail = next(e for e in entries if e["title"] == "Mail")
                await client.post("totp/import", json={
                    "uri": "otpauth://totp/Example:ann?secret=JBSWY3DPEHPK3PXP&issuer=Mail",
                    "entry_id": mail["id"]})
                # An old password: the health report's "old" finding.
                tax = next(e for e in entries if e["title"] == "Tax office")
                tax["password_changed"] = "2023-02-01T09:00:00+00:00"
                plugin.session.vault().save()
                await seed_messages(rt, plugin, client)
                await client.post("vault/lock")

        arun(seed())
        with page_shots(qapp, qtbot, rt, tmp_path, arun, HERE) as shots:
            shots.open("/plugins/security_toolkit/", size=(1280, 900))
            js = shots.js

            def run(code: str) -> None:
                js(f"({code}) || 1")

            qtbot.waitUntil(lambda: not js("document.getElementById('unlock-form')"
                                           ".hidden"))
            run(f"document.getElementById('unlock-password').value = {MASTER!r}")
            run("document.getElementById('unlock-form').requestSubmit()")
            qtbot.waitUntil(lambda: js("document.querySelectorAll('#entry-list "
                                       "button').length") == 7, timeout=20_000)
            run("securityToolkit.openEntry(securityToolkit.state.entries"
                ".find(e => e.title === 'Bank').id)")
            qtbot.waitUntil(lambda: js("document.getElementById('e-title').value")
                            == "Bank")
            qtbot.waitUntil(lambda: "Strength" in shots.text("e-strength"))
            qtbot.waitUntil(lambda: "locks in" in shots.text("lock-state"))
            shots.save("security-toolkit")

            run("securityToolkit.showTab('health')")
            run("document.getElementById('health-form').requestSubmit()")
            qtbot.waitUntil(lambda: js("document.querySelectorAll('#health-rows tr')"
                                       ".length") >= 4, timeout=20_000)
            # One click on the Wi-Fi row's Fix: regenerated, stored, report refreshed.
            run("[...document.querySelectorAll('#health-rows tr')].find(r => r.textContent"
                ".includes('Wi-Fi')).querySelector('td:last-child button').click()")
            qtbot.waitUntil(lambda: not js("document.getElementById('fixed-box')"
                                           ".hidden"), timeout=20_000)
            shots.save("security-toolkit-health")

            run("securityToolkit.showTab('messages')")
            qtbot.waitUntil(lambda: js("document.querySelectorAll('#thread li')"
                                       ".length") == 2, timeout=20_000)
            shots.save("security-toolkit-messages")
