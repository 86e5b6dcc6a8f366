"""The plugin in the real app core with the real embedded v1 server: the routes end to
end, clean 4xx errors, no secret in any list response or log, the one-click fix from the
health report, the KDF upgrade through settings, the lock at teardown, and secure
messages whose stored content on the server is ciphertext only."""

from __future__ import annotations

import hashlib
import logging
import sqlite3
from pathlib import Path
from typing import Any

import pytest
from security_toolkit import e2e, generator

MASTER = "Tr0ub4dor&3-horse"

SECRETS = ["hunter22", "Zq8#vL2!mW9@xR4-long", "my secret note about the safe",
           "JBSWY3DPEHPK3PXP", MASTER]


def passphrase_words(value: str) -> list[str]:
    """The list words of a passphrase made with the "-" separator: four EFF words hold a
    hyphen themselves ("t-shirt", "yo-yo"), so a plain split counted one word too many."""
    parts, found = value.split("-"), []
    while parts:
        pair = "-".join(parts[:2])
        if len(parts) > 1 and pair in generator.words():
            found.append(pair)
            del parts[:2]
        else:
            found.append(parts.pop(0))
    return found


def no_secret_in(text: str, extra: list[str] = ()) -> None:  # type: ignore[assignment]
    for secret in [*SECRETS, *extra]:
        assert secret not in text, f"a secret leaked: {secret[:4]}..."


@pytest.mark.asyncio
async def test_vault_routes_end_to_end(app: Any, tmp_path: Path,
                                       caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    pwned = tmp_path / "pwned.txt"
    pwned.write_text(hashlib.sha1(b"hunter22").hexdigest().upper() + ":31337\n")
    async with app() as (client, plugin, _server):
        assert (await client.get("status")).json()["exists"] is False
        assert (await client.get("entries")).status_code == 423
        short = await client.post("vault/create", json={"password": "short"})
        assert short.status_code == 422 and short.json()["field"] == "password"
        assert (await client.post("vault/create", json={"password": MASTER})).status_code == 200
        again = await client.post("vault/create", json={"password": MASTER})
        assert again.status_code == 409

        ids = {}
        for title, password, extra in [
            ("Mail", "hunter22", {"url": "https://mail.example.org"}),
            ("Forum", "hunter22", {}),
            ("Bank", "Zq8#vL2!mW9@xR4-long", {"notes": "my secret note about the safe",
                                              "folder": "Money"}),
        ]:
            made = await client.post("entries", json={"title": title, "username": "ann",
                                                      "password": password, **extra})
            assert made.status_code == 201, made.text
            ids[title] = made.json()["id"]
        bad_totp = await client.post("entries", json={"title": "X", "totp": "otpauth://hotp/x"})
        assert bad_totp.status_code == 422 and bad_totp.json()["field"] == "totp"
        no_title = await client.post("entries", json={"username": "x"})
        assert no_title.status_code == 422 and "title" in no_title.text

        listing = await client.get("entries")
        assert listing.json()["total"] == 3 and listing.json()["folders"] == ["", "Money"]
        no_secret_in(listing.text)
        assert (await client.get("entries", params={"q": "mone"})).json()["entries"][0][
            "title"] == "Bank"
        detail = (await client.get(f"entries/{ids['Bank']}")).json()
        assert detail["password"] == "Zq8#vL2!mW9@xR4-long" and detail["notes"]
        assert (await client.get("entries/nope")).status_code == 404

        # -- TOTP
        imported = await client.post("totp/import", json={
            "uri": "otpauth://totp/ACME:ann?secret=JBSWY3DPEHPK3PXP&issuer=ACME"})
        assert imported.status_code == 201 and imported.json()["entry"]["title"] == "ACME"
        codes = await client.get("totp")
        assert len(codes.json()["codes"]) == 1 and len(codes.json()["codes"][0]["code"]) == 6
        no_secret_in(codes.text)
        no_secret_in((await client.get("entries")).text)
        qr = await client.get(f"totp/{imported.json()['entry']['id']}/qr.svg")
        assert qr.status_code == 200 and qr.headers["content-type"].startswith("image/svg")
        assert (await client.get(f"totp/{ids['Mail']}/qr.svg")).status_code == 404

        # -- health report and the one-click fix
        report = (await client.post("health", json={"breach_list": str(pwned)})).json()
        by_title = {i["title"]: {p["kind"] for p in i["problems"]} for i in report["issues"]}
        assert by_title["Mail"] == {"weak", "reused", "breached"}
        assert "Bank" not in by_title and report["breach_list"]["kind"] == "small list"
        no_secret_in(str(report))
        missing = await client.post("health", json={"breach_list": str(tmp_path / "no.txt")})
        assert missing.status_code == 422 and missing.json()["field"] == "breach_list"
        # The refused path was not remembered: the next report uses the list that opened.
        again = await client.post("health", json={})
        assert again.status_code == 200 and again.json()["breach_list"]["kind"] == "small list"
        # A fix whose breach list is refused changes nothing (it replaced the passwords,
        # then answered 422).
        mail_before = (await client.get(f"entries/{ids['Mail']}")).json()
        refused = await client.post("health/fix", json={
            "entry_ids": [ids["Mail"]], "breach_list": str(tmp_path / "no.txt")})
        assert refused.status_code == 422 and refused.json()["field"] == "breach_list"
        assert (await client.get(f"entries/{ids['Mail']}")).json() == mail_before

        # An editor opened before the fix (another tab) cannot save the old text back.
        stale = (await client.get(f"entries/{ids['Forum']}")).json()
        fixed = await client.post("health/fix", json={"entry_ids": [ids["Mail"], ids["Forum"]],
                                                      "kind": "passphrase"})
        assert fixed.status_code == 200, fixed.text
        body = fixed.json()
        assert {f["title"] for f in body["fixed"]} == {"Mail", "Forum"}
        assert all(f["score"] >= 3 for f in body["fixed"])
        assert body["report"]["summary"]["breached"] == 0 and body["report"]["issues"] == []
        no_secret_in(fixed.text)
        mail = (await client.get(f"entries/{ids['Mail']}")).json()
        forum = (await client.get(f"entries/{ids['Forum']}")).json()
        assert mail["password"] != forum["password"]
        made = passphrase_words(mail["password"])
        assert len(made) == 6 and set(made) <= set(generator.words()), made
        assert mail["history_count"] == 1
        # The password before the fix can be read without undoing it (audit: only Undo
        # showed it, and that reverted the fix).
        earlier = (await client.get(f"entries/{ids['Mail']}/history/0")).json()
        assert earlier["password"] == "hunter22"
        missing = await client.get(f"entries/{ids['Mail']}/history/1")
        assert missing.status_code == 404 and missing.json()["field"] == "index"
        undone = await client.post(f"entries/{ids['Mail']}/restore")
        assert undone.status_code == 200
        restored = (await client.get(f"entries/{ids['Mail']}")).json()
        assert restored["password"] == "hunter22"
        # As old as it was: the undo must not make an old password look new.
        assert restored["password_changed"] == mail_before["password_changed"]
        assert (await client.post(f"entries/{ids['Bank']}/restore")).status_code == 409
        keys = ("title", "username", "password", "url", "notes", "totp", "folder", "tags")
        late = await client.put(f"entries/{ids['Forum']}", json={
            **{k: stale[k] for k in keys}, "username": "changed", "version": stale["version"]})
        assert late.status_code == 409 and late.json()["field"] == "version", late.text
        fresh = (await client.get(f"entries/{ids['Forum']}")).json()
        assert fresh["password"] == forum["password"]  # the fix stays
        saved = await client.put(f"entries/{ids['Forum']}", json={
            **{k: fresh[k] for k in keys}, "username": "changed", "version": fresh["version"]})
        assert saved.status_code == 200 and saved.json()["username"] == "changed"
        unknown = await client.post("health/fix", json={"entry_ids": ["nope"]})
        assert unknown.status_code == 404 and unknown.json()["field"] == "entry_id"

        # -- generator
        made = (await client.post("generate", json={"kind": "password", "count": 3,
                                                    "password": {"length": 32}})).json()
        assert len(made["values"]) == 3 and all(len(v) == 32 for v in made["values"])
        assert made["strength"]["score"] == 4 and made["entropy_bits"] > 150
        bad = await client.post("generate", json={"password": {"length": 2}})
        assert bad.status_code == 422 and "length" in bad.text
        none = await client.post("generate", json={"password": {
            "lower": False, "upper": False, "digits": False, "symbols": False}})
        assert none.status_code == 422 and none.json()["field"] == "rules"
        weak = (await client.post("strength", json={"password": "password1"})).json()
        assert weak["score"] <= 1

        # -- files: age to our own key, a corrupt file, hashing, HMAC
        enc = await client.post("files/encrypt", files={"file": ("plan.txt", b"the plan")})
        assert enc.status_code == 200 and enc.content.startswith(b"age-encryption.org/v1")
        assert "plan.txt.age" in enc.headers["content-disposition"]
        dec = await client.post("files/decrypt", files={"file": ("plan.txt.age", enc.content)})
        assert dec.status_code == 200 and dec.content == b"the plan"
        broken = bytearray(enc.content)
        broken[-3] ^= 1
        bad_age = await client.post("files/decrypt", files={"file": ("x.age", bytes(broken))})
        assert bad_age.status_code == 422 and bad_age.json()["field"] == "file"
        not_age = await client.post("files/decrypt", files={"file": ("x.age", b"hello")})
        assert not_age.status_code == 422 and "not an age file" in not_age.text
        hashed = await client.post("files/hash", files={"file": ("a", b"abc")}, data={
            "expected": "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"})
        assert hashed.json()["verify"] == {"match": True, "algorithm": "sha256"}
        mac = await client.post("hmac", json={"message": "what do ya want for nothing?",
                                              "key": "Jefe"})
        assert mac.json()["hmac"].startswith("5bdcc146")
        bad_key = await client.post("hmac", json={"message": "m", "key": "zz",
                                                  "key_encoding": "hex"})
        assert bad_key.status_code == 422 and bad_key.json()["field"] == "key"

        # -- import / export
        csv_bad = await client.post("import/csv", json={
            "text": "Title,Username,Password\nA,b,c\nB,c\n"})
        assert csv_bad.status_code == 422 and csv_bad.json()["detail"].startswith("csv: line 3")
        csv_ok = await client.post("import/csv", json={
            "text": "Title,Username,Password,URL,TOTP\nShop,ann,pw-from-csv,https://shop,\n"
                    "Old,ann,x,,otpauth://hotp/x?secret=JBSWY3DPEHPK3PXP&counter=1\n"})
        imported = csv_ok.json()
        assert imported["format"] == "keepassxc" and imported["imported"] == 2
        assert len(imported["warnings"]) == 1 and "TOTP dropped" in imported["warnings"][0]
        # A 'Last Modified' that is no date is said (audit: silently "changed today").
        undated = (await client.post("import/csv", json={
            "text": "Group,Title,Username,Password,URL,Notes,TOTP,Icon,Last Modified,Created\n"
                    "Root,Dated,u,p,,,,0,2019-03-01T10:00:00Z,\n"
                    "Root,Undated,u,p,,,,0,not-a-date,\n"})).json()
        assert undated["imported"] == 2 and len(undated["warnings"]) == 1
        assert "entry 2 (Undated): 'Last Modified' 'not-a-date' is no date" in \
            undated["warnings"][0]
        too_long = await client.post("import/csv", json={
            "text": "Title,Username,Password\nHuge,ann," + "Zy" * 600 + "\n"})
        assert too_long.json()["imported"] == 0 and "ZyZy" not in too_long.text
        assert too_long.json()["warnings"][0].startswith("entry 1: skipped (password:")
        exported = await client.post("export", json={"format": "kdbx", "password": "kdbx-pass"})
        assert exported.status_code == 200 and exported.content[:4] == b"\x03\xd9\xa2\x9a"
        wrong = await client.post("import/kdbx", files={"file": ("v.kdbx", exported.content)},
                                  data={"password": "nope"})
        assert wrong.status_code == 422 and wrong.json()["field"] == "password"
        back = await client.post("import/kdbx", files={"file": ("v.kdbx", exported.content)},
                                 data={"password": "kdbx-pass"})
        assert back.json()["imported"] == 8, back.text  # every entry: 6, and the dated pair above
        csv_out = await client.post("export", json={"format": "bitwarden"})
        assert csv_out.text.startswith("folder,favorite,type,name")
        backup = await client.get("vault/backup")
        assert backup.content.startswith(b"STKVAULT")
        no_secret_in(backup.text)

        # Typing on the page keeps the vault open (audit: it reached no route and the
        # idle lock cleared the editor mid-sentence).
        kept = (await client.post("activity")).json()
        assert kept["unlocked"] is True and kept["locks_in"] > 0
        # -- lock, wrong password, a flipped bit on disk
        assert (await client.post("vault/lock")).json()["unlocked"] is False
        assert (await client.get("entries")).status_code == 423
        too_long = "S3cretMasterPW_" * 80  # past the model's 1024: a 422 from the host
        refused = await client.post("vault/unlock", json={"password": too_long})
        assert refused.status_code == 422 and "S3cretMasterPW_" not in refused.text
        wrong_master = await client.post("vault/unlock", json={"password": "not it at all"})
        assert wrong_master.status_code == 422 and wrong_master.json()["field"] == "password"
        assert (await client.post("vault/unlock", json={"password": MASTER})).status_code == 200
        changed = await client.post("vault/password", json={"current": "nope!",
                                                            "new": "another master pw"})
        assert changed.status_code == 422 and changed.json()["field"] == "password"
        await client.post("vault/lock")
        path = plugin.session.path
        blob = bytearray(path.read_bytes())
        blob[len(blob) // 2] ^= 0x04
        path.write_bytes(bytes(blob))
        damaged = await client.post("vault/unlock", json={"password": MASTER})
        assert damaged.status_code == 422 and damaged.json()["field"] == "vault"
        assert "damaged" in damaged.text and ".bak" in damaged.text
        assert "damaged" in (await client.get("status")).json()["damaged"]

    logs = caplog.text + "".join(p.read_text(errors="replace") for p in
                                 (tmp_path / "apphome" / "logs").rglob("*") if p.is_file())
    assert "vault unlocked" in logs  # the plugin does log, just never a secret
    no_secret_in(logs, ["pw-from-csv", "kdbx-pass", "the plan", mail["password"]])


@pytest.mark.asyncio
async def test_kdf_upgrade_through_settings_and_lock_at_teardown(app: Any) -> None:
    async with app() as (client, plugin, _server):
        await client.post("vault/create", json={"password": MASTER})
        await client.post("entries", json={"title": "Kept", "password": "x"})
        assert (await client.get("status")).json()["kdf"]["memory_kib"] == 64
    assert plugin.session.status()["unlocked"] is False
    assert plugin.session.lock_reason == "the plugin stopped"
    async with app(kdf_memory_kib=256, kdf_time_cost=2) as (client, _plugin, _server):
        assert (await client.get("status")).json()["kdf"]["memory_kib"] == 64  # locked
        opened = (await client.post("vault/unlock", json={"password": MASTER})).json()
        assert opened["upgraded"] is True
        assert opened["kdf"] == {"time_cost": 2, "memory_kib": 256, "parallelism": 1}
        await client.post("vault/lock")
        status = (await client.get("status")).json()
        assert status["kdf"]["memory_kib"] == 256  # from the file's header
        again = (await client.post("vault/unlock", json={"password": MASTER})).json()
        assert again["upgraded"] is False and again["entries"] == 1


@pytest.mark.asyncio
async def test_secure_messages_leave_only_ciphertext_on_the_server(app: Any) -> None:
    from api_integration_layer.testing import PASSWORD

    text = "Meet at the old mill at nine, bring the ledger"
    async with app(with_v1=True) as (client, _plugin, server):
        await client.post("vault/create", json={"password": MASTER})
        nobody = await client.post("contacts", json={"username": "bob",
                                                     "public_key": e2e.public_text(
                                                         e2e.new_private())})
        assert nobody.status_code == 409 and nobody.json()["field"] == "v1"
        layer = server.plugin("api_integration_layer")
        await layer.client.auth.register("ann", "ann@example.org", PASSWORD)
        await layer.client.auth.login("ann", PASSWORD)
        ann_id = layer.client.user["id"]
        bob = await server.account("bob")
        bob_id = bob.user["id"]
        bob_private = e2e.new_private()  # Bob's own install holds this
        bob_public = e2e.public_text(bob_private)

        keys = (await client.get("keys")).json()
        ann_public = keys["public_key"]
        assert ann_public.startswith("stk1:") and len(keys["fingerprint"].split()) == 6
        assert keys["age_recipient"].startswith("age1")

        for body, field in [({"username": "bob", "public_key": "ssh-rsa AAA"}, "public_key"),
                            ({"username": "bob", "public_key": "stk1:abc"}, "public_key"),
                            ({"username": "nobody-here", "public_key": bob_public},
                             "username")]:
            refused = await client.post("contacts", json=body)
            assert refused.status_code in (404, 422) and refused.json()["field"] == field
        unpinned = await client.post(f"messages/{bob_id}", json={"text": text})
        assert unpinned.status_code == 404 and unpinned.json()["field"] == "user_id"

        # The v1 key directory: nothing published yet, then both publish.
        unpublished = await client.post("contacts", json={"username": "bob"})
        assert unpublished.status_code == 404 and unpublished.json()["field"] == "public_key"
        assert (await client.get("keys")).json()["published"] is False
        assert (await client.post("keys/publish")).status_code == 200
        assert (await client.get("keys")).json()["published"] is True
        listed = (await bob.keys.get(ann_id)).keys
        assert e2e.from_directory(listed[0].public_key) == ann_public
        await bob.keys.publish(e2e.directory_text(e2e.parse_public(bob_public)))

        pinned = await client.post("contacts", json={"username": "bob"})
        assert pinned.status_code == 201, pinned.text
        contact = pinned.json()
        assert contact["user_id"] == bob_id and contact["verified"] is False
        assert contact["public_key"] == bob_public and contact["source"] == "directory"
        # Both sides compute the same safety number from the two public keys.
        assert contact["safety_number"] == e2e.safety_number(
            e2e.parse_public(bob_public), e2e.parse_public(ann_public))
        verified = await client.put(f"contacts/{bob_id}", json={"verified": True})
        assert verified.json()["verified"] is True

        sent = await client.post(f"messages/{bob_id}", json={"text": text})
        assert sent.status_code == 201 and sent.json()["encrypted"] is True

        # What the server stored: a flag and ciphertext, nowhere the text.
        assert server.runtime is not None and server.runtime.api_v1 is not None
        root = server.runtime.api_v1.root
        db = sqlite3.connect(root / "plexichat.sqlite3")
        try:
            stored = db.execute("SELECT content, encrypted FROM messages").fetchall()
        finally:
            db.close()
        assert len(stored) == 1 and stored[0][1] == 1
        assert stored[0][0].startswith(e2e.PREFIX) and "mill" not in stored[0][0]
        for file in root.rglob("*"):
            if file.is_file():
                assert b"old mill" not in file.read_bytes(), file.name

        # Bob, with his private key, reads it; the key that sealed it is Ann's.
        received = (await bob.messages.conversation(ann_id)).messages[0]
        plain, sender_key = e2e.open_sealed(received.content, bob_private,
                                            received.sender_id, received.recipient_id)
        assert plain == text and sender_key == e2e.parse_public(ann_public)
        # Moved into another conversation, it fails authentication.
        with pytest.raises(Exception, match="authentication"):
            e2e.open_sealed(received.content, bob_private, received.sender_id, "someone")

        reply = e2e.seal("Nine it is", bob_private, e2e.parse_public(ann_public), bob_id,
                         ann_id)
        await bob.messages.send(ann_id, reply, encrypted=True)
        await bob.messages.send(ann_id, "plain hello")
        mallory = e2e.new_private()
        forged = e2e.seal("I am bob", mallory, e2e.parse_public(ann_public), bob_id, ann_id)
        await bob.messages.send(ann_id, forged, encrypted=True)

        thread = (await client.get(f"messages/{bob_id}")).json()
        shown = [(m["from_me"], m["text"], m["trust"]) for m in thread["messages"]]
        assert shown == [(True, text, "mine"), (False, "Nine it is", "verified"),
                         (False, "plain hello", "plain"), (False, "I am bob", "key changed")]
        convs = (await client.get("messages")).json()
        assert convs["conversations"][0]["username"] == "bob"
        assert convs["conversations"][0]["verified"] is True

        # Another key appears in the directory for Bob (a new device, or a server
        # swapping keys): sending stops until the user looks and pins it again.
        await bob.keys.publish(e2e.directory_text(e2e.parse_public(e2e.public_text(mallory))))
        held = await client.post(f"messages/{bob_id}", json={"text": "still there?"})
        assert held.status_code == 409 and held.json()["field"] == "public_key"
        rotated = await client.post("contacts", json={"user_id": bob_id})
        assert rotated.json()["verified"] is False
        assert rotated.json()["public_key"] == e2e.public_text(mallory)
        assert (await client.post(f"messages/{bob_id}", json={"text": "ok"})).status_code == 201
        # Exchanged by hand still works: the key text pasted in.
        by_hand = await client.post("contacts", json={"user_id": bob_id,
                                                      "public_key": bob_public})
        assert by_hand.json()["source"] == "by hand" and by_hand.json()["verified"] is False
