"""Security Toolkit: an encrypted password vault with a health report that fixes what it
finds, a generator, TOTP codes, age file encryption, hashes and HMAC, KeePass and CSV
import/export, and end-to-end encrypted messages over PlexiChat v1.

Modules: ``vault`` (the file format), ``session`` (the open vault and its idle lock),
``entries``, ``generator``, ``health``, ``otp``, ``files`` (age, hashes, HMAC),
``interop`` (KDBX, CSV) and ``e2e`` (messages). This module wires routes to them.

Logging rule: nothing secret is ever logged. Records name actions and counts (``vault
unlocked``, ``3 entries imported``), never a password, note, key or message text.
"""

from __future__ import annotations

import asyncio
import functools
import json
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

from fastapi import File, Form, UploadFile
from fastapi.responses import JSONResponse, Response
from pydantic import ValidationError

from plexichat_desktop.plugins.api import Plugin, PluginContext
from plexichat_desktop.plugins.attachments import attachment_headers
from plexichat_desktop.plugins.files import write_atomic
from security_toolkit import e2e, entries, files, generator, health, interop, otp
from security_toolkit.errors import Problem
from security_toolkit.models import (
    ChangePasswordBody,
    ContactBody,
    CsvImportBody,
    EntryChange,
    EntryIn,
    ExportBody,
    FixBody,
    GenerateBody,
    HashTextBody,
    HealthBody,
    HmacBody,
    MessageBody,
    PasswordBody,
    StrengthBody,
    ToolkitSettings,
    TotpImportBody,
    VerifyBody,
)
from security_toolkit.session import Session
from security_toolkit.vault import now_iso

if TYPE_CHECKING:
    from api_integration_layer.scoped import ScopedApi

Handler = Callable[..., Awaitable[Any]]
Upload = Annotated[UploadFile, File()]
OptionalUpload = Annotated[UploadFile | None, File()]
FormText = Annotated[str, Form()]
FormFlag = Annotated[bool, Form()]
CHUNK = 1 << 20


def why(exc: Exception) -> str:
    """A refusal in words, never the refused value (it may be a password)."""
    if isinstance(exc, ValidationError):
        return "; ".join(f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}"
                         for e in exc.errors())
    return str(exc)


def attachment(data: bytes, name: str, media_type: str) -> Response:
    return Response(data, media_type=media_type,
                    headers={**attachment_headers(name), "Cache-Control": "no-store"})


class SecurityToolkitPlugin(Plugin):
    settings_model = ToolkitSettings

    def setup(self, ctx: PluginContext) -> None:
        self.ctx = ctx
        self.config: ToolkitSettings = ctx.config
        path = (Path(self.config.vault_path).expanduser() if self.config.vault_path
                else ctx.data_dir / "vault.stkv")
        self.session = Session(path, self.config.kdf, self.config.idle_lock_minutes * 60,
                               ctx.logger)
        self.prefs_path = ctx.data_dir / "prefs.json"
        ctx.on_teardown(lambda: self.session.lock("the plugin stopped"))
        routes: list[tuple[str, Handler, str]] = [
            ("/status", self.status, "GET"),
            ("/vault/create", self.create, "POST"),
            ("/vault/unlock", self.unlock, "POST"),
            ("/vault/lock", self.lock, "POST"),
            ("/activity", self.activity, "POST"),
            ("/vault/password", self.change_password, "POST"),
            ("/vault/backup", self.backup, "GET"),
            ("/entries", self.list_entries, "GET"),
            ("/entries", self.add_entry, "POST"),
            ("/entries/{entry_id}", self.get_entry, "GET"),
            ("/entries/{entry_id}", self.put_entry, "PUT"),
            ("/entries/{entry_id}", self.delete_entry, "DELETE"),
            ("/entries/{entry_id}/restore", self.restore_entry, "POST"),
            ("/entries/{entry_id}/history/{index}", self.history_password, "GET"),
            ("/generate", self.generate, "POST"),
            ("/strength", self.strength, "POST"),
            ("/health", self.health, "POST"),
            ("/health/fix", self.fix, "POST"),
            ("/totp", self.totp_codes, "GET"),
            ("/totp/import", self.totp_import, "POST"),
            ("/totp/{entry_id}/qr.svg", self.totp_qr, "GET"),
            ("/files/encrypt", self.encrypt_file, "POST"),
            ("/files/decrypt", self.decrypt_file, "POST"),
            ("/files/hash", self.hash_file, "POST"),
            ("/hash", self.hash_text, "POST"),
            ("/hmac", self.hmac, "POST"),
            ("/import/csv", self.import_csv, "POST"),
            ("/import/kdbx", self.import_kdbx, "POST"),
            ("/export", self.export, "POST"),
            ("/keys", self.keys, "GET"),
            ("/keys/publish", self.publish_key, "POST"),
            ("/contacts", self.add_contact, "POST"),
            ("/contacts/{user_id}", self.verify_contact, "PUT"),
            ("/contacts/{user_id}", self.delete_contact, "DELETE"),
            ("/messages", self.conversations, "GET"),
            ("/messages/{user_id}", self.read_messages, "GET"),
            ("/messages/{user_id}", self.send_message, "POST"),
        ]
        for route, handler, method in routes:
            # A Problem raised on the way is answered by the host (status, detail, field).
            ctx.add_route(route, handler, methods=[method])

    # -- helpers -------------------------------------------------------------------
    @property
    def api(self) -> ScopedApi:
        return self.ctx.api

    def _prefs(self) -> dict[str, Any]:
        try:
            data = json.loads(self.prefs_path.read_text("utf-8"))
            return data if isinstance(data, dict) else {}
        except (FileNotFoundError, ValueError):
            return {}

    def _save_prefs(self, prefs: dict[str, Any]) -> None:
        write_atomic(self.prefs_path, json.dumps(prefs, indent=1))

    def _breaches(self, override: str | None) -> health.BreachList | None:
        """The breach list to check against: ``override`` (remembered once it opened, so
        a refused path does not break every later report), else the remembered one."""
        prefs = self._prefs()
        path = (override.strip() if override is not None
                else prefs.get("breach_list", self.config.breach_list) or "")
        breaches = health.BreachList(Path(path).expanduser()) if path else None
        if override is not None and prefs.get("breach_list") != path:
            prefs["breach_list"] = path
            self._save_prefs(prefs)
        return breaches

    async def _read_upload(self, upload: UploadFile, field: str = "file") -> bytes:
        limit = int(self.config.max_file_mb * (1 << 20))
        chunks: list[bytes] = []
        size = 0
        while chunk := await upload.read(CHUNK):
            size += len(chunk)
            if size > limit:
                raise Problem(field, f"over the {self.config.max_file_mb:g} MB limit "
                                     "(setting max_file_mb)", 413)
            chunks.append(chunk)
        return b"".join(chunks)

    def _identity(self) -> dict[str, Any]:
        """The vault's key pairs, made on first use (older vaults have none yet)."""
        import pyrage

        vault = self.session.vault()
        payload = vault.payload
        changed = False
        if not payload.get("identity"):
            payload["identity"] = {"x25519": e2e.new_private(), "created": now_iso()}
            changed = True
        if not payload.get("age_identity"):
            payload["age_identity"] = str(pyrage.x25519.Identity.generate())
            changed = True
        if changed:
            vault.save()
        return payload

    # -- vault ---------------------------------------------------------------------
    async def status(self) -> dict[str, Any]:
        info = self.session.status()
        user = None
        try:
            user = self.api.user
        except Exception:  # the API layer is stopped or failed: messages are off
            user = None
        info["v1_user"] = user
        info["breach_list"] = self._prefs().get("breach_list", self.config.breach_list)
        return info

    async def activity(self) -> dict[str, Any]:
        """The user is typing in the page (an entry's notes, say): the idle lock waits.
        Typing reached no route, and the lock cleared an editor in mid-sentence."""
        self.session.activity()
        return self.session.status()

    async def create(self, body: PasswordBody) -> dict[str, Any]:
        await self.session.create(body.password)
        self._identity()
        return self.session.status()

    async def unlock(self, body: PasswordBody) -> dict[str, Any]:
        result = await self.session.unlock(body.password)
        self._identity()
        return {**self.session.status(), **result}

    async def lock(self) -> dict[str, Any]:
        self.session.lock()
        return self.session.status()

    async def change_password(self, body: ChangePasswordBody) -> dict[str, Any]:
        await self.session.change_password(body.current, body.new)
        return self.session.status()

    async def backup(self) -> Response:
        """The encrypted vault file as it is on disk (safe to store anywhere)."""
        self.session.vault()
        return attachment(self.session.path.read_bytes(), self.session.path.name,
                          "application/octet-stream")

    # -- entries -------------------------------------------------------------------
    async def list_entries(self, q: str = "", folder: str | None = None) -> dict[str, Any]:
        payload = self.session.vault().payload
        found = [e for e in payload["entries"]
                 if (not q or entries.matches(e, q))
                 and (folder is None or e.get("folder", "") == folder)]
        found.sort(key=lambda e: (e.get("folder", "").lower(), e["title"].lower()))
        folders = sorted({e.get("folder", "") for e in payload["entries"]})
        return {"entries": [entries.listing(e) for e in found], "folders": folders,
                "total": len(payload["entries"])}

    async def add_entry(self, body: EntryIn) -> JSONResponse:
        vault = self.session.vault()
        entry = entries.new_entry(body)
        vault.payload["entries"].append(entry)
        vault.save()
        return JSONResponse(entries.listing(entry), status_code=201)

    async def get_entry(self, entry_id: str) -> dict[str, Any]:
        return entries.detail(entries.find(self.session.vault().payload, entry_id))

    async def put_entry(self, entry_id: str, body: EntryChange) -> dict[str, Any]:
        vault = self.session.vault()
        entry = entries.find(vault.payload, entry_id)
        entries.check_unchanged(entry, body.version)
        entries.update(entry, body)
        vault.save()
        return entries.listing(entry)

    async def delete_entry(self, entry_id: str) -> dict[str, Any]:
        vault = self.session.vault()
        entry = entries.find(vault.payload, entry_id)
        vault.payload["entries"].remove(entry)
        vault.save()
        return {"deleted": entry_id}

    async def history_password(self, entry_id: str, index: int) -> dict[str, Any]:
        """An earlier password of an entry (0: the one before the current), asked for
        one at a time as the current one is: after a fix the site still wants the old
        one to change it, and only Undo (which reverted the fix) showed it."""
        vault = self.session.vault()
        history = entries.find(vault.payload, entry_id).get("history") or []
        if not 0 <= index < len(history):
            raise Problem("index", f"the entry has {len(history)} earlier password(s)", 404)
        item = history[index]
        return {"password": item["password"], "until": item["until"],
                "since": item.get("since")}

    async def restore_entry(self, entry_id: str) -> dict[str, Any]:
        vault = self.session.vault()
        entry = entries.find(vault.payload, entry_id)
        entries.restore_previous(entry)
        vault.save()
        return entries.listing(entry)

    # -- generator -----------------------------------------------------------------
    async def generate(self, body: GenerateBody) -> dict[str, Any]:
        self.session.activity()
        rules = body.password if body.kind == "password" else body.passphrase
        make = (functools.partial(generator.password, body.password) if body.kind == "password"
                else functools.partial(generator.passphrase, body.passphrase))
        values = [make() for _ in range(body.count)]
        verdict = await asyncio.to_thread(generator.strength, values[0])
        return {"kind": body.kind, "values": values,
                "entropy_bits": generator.entropy_bits(rules), "strength": verdict}

    async def strength(self, body: StrengthBody) -> dict[str, Any]:
        self.session.activity()
        return await asyncio.to_thread(generator.strength, body.password, body.user_inputs)

    # -- health --------------------------------------------------------------------
    def _report(self, breaches: health.BreachList | None) -> dict[str, Any]:
        return health.report(self.session.vault().payload["entries"],
                             weak_below=self.config.weak_below_score,
                             max_age_days=self.config.max_password_age_days,
                             breaches=breaches)

    async def health(self, body: HealthBody) -> dict[str, Any]:
        self.session.vault()
        breaches = await asyncio.to_thread(self._breaches, body.breach_list)
        return await asyncio.to_thread(self._report, breaches)

    async def fix(self, body: FixBody) -> dict[str, Any]:
        """Regenerate and store new passwords for the chosen entries in one save.

        The old password of each stays in its history: the site still wants it until the
        user changed it there, and ``/entries/{id}/restore`` undoes the fix."""
        vault = self.session.vault()
        targets = [entries.find(vault.payload, eid) for eid in dict.fromkeys(body.entry_ids)]
        make = (functools.partial(generator.password, body.password) if body.kind == "password"
                else functools.partial(generator.passphrase, body.passphrase))
        # The breach list first: refused, it must leave every password as it was (the
        # answer is an error), not replace them behind an error.
        breaches = await asyncio.to_thread(self._breaches, body.breach_list)
        stamp = now_iso()
        for entry in targets:
            new = make()
            while new == entry["password"]:  # astronomically unlikely; keep "changed" true
                new = make()
            entries.set_password(entry, new, stamp)
        vault.save()
        self.ctx.logger.info("health fix: %d passwords regenerated", len(targets))
        fixed = [{"entry_id": e["id"], "title": e["title"], "url": e.get("url", ""),
                  "score": e["score"]} for e in targets]
        try:
            report = await asyncio.to_thread(self._report, breaches)
        except (Problem, OSError) as exc:  # the list went away since it opened: saved all the same
            report = await asyncio.to_thread(self._report, None)
            return {"fixed": fixed, "report": report,
                    "note": f"The passwords were changed; the breach list could not be "
                            f"read for the new report ({why(exc)})."}
        return {"fixed": fixed, "report": report}

    # -- TOTP ----------------------------------------------------------------------
    async def totp_codes(self) -> dict[str, Any]:
        """Current codes of every entry with TOTP (codes, never the secrets)."""
        codes = []
        for entry in self.session.vault(touch=False).payload["entries"]:
            if entry.get("totp"):
                spec = otp.parse(entry["totp"], "totp")
                codes.append({"entry_id": entry["id"], "title": entry["title"],
                              **spec.public()})
        codes.sort(key=lambda c: c["title"].lower())
        return {"codes": codes}

    async def totp_import(self, body: TotpImportBody) -> JSONResponse:
        spec = otp.parse(body.uri)
        vault = self.session.vault()
        if body.entry_id:
            entry = entries.find(vault.payload, body.entry_id)
            entry["totp"] = spec.uri()
            entry["updated"] = now_iso()
            status = 200
        else:
            title = body.title or spec.issuer or spec.account or "TOTP"
            entry = entries.new_entry(EntryIn(title=title, username=spec.account,
                                              totp=spec.uri()))
            vault.payload["entries"].append(entry)
            status = 201
        vault.save()
        return JSONResponse({"entry": entries.listing(entry), **spec.public()},
                            status_code=status)

    async def totp_qr(self, entry_id: str) -> Response:
        entry = entries.find(self.session.vault().payload, entry_id)
        if not entry.get("totp"):
            raise Problem("entry_id", "this entry has no TOTP secret", 404)
        return Response(otp.qr_svg(entry["totp"]), media_type="image/svg+xml",
                        headers={"Cache-Control": "no-store"})

    # -- files ---------------------------------------------------------------------
    async def encrypt_file(self, file: Upload, recipients: FormText = "",
                           passphrase: FormText = "", to_self: FormFlag = True
                           ) -> Response:
        data = await self._read_upload(file)
        targets = [r for r in recipients.splitlines() if r.strip()]
        if not passphrase and to_self:
            import pyrage

            identity = self._identity()["age_identity"]
            targets.append(str(pyrage.x25519.Identity.from_str(identity).to_public()))
        sealed = await asyncio.to_thread(files.encrypt, data, recipients=targets,
                                         passphrase=passphrase or None)
        self.ctx.logger.info("encrypted a file of %d bytes with age", len(data))
        return attachment(sealed, (file.filename or "file") + ".age", "application/octet-stream")

    async def decrypt_file(self, file: Upload, passphrase: FormText = ""
                           ) -> Response:
        data = await self._read_upload(file)
        identities = []
        if not files.is_passphrase_file(data):
            identities = [self._identity()["age_identity"]]
        plain = await asyncio.to_thread(files.decrypt, data, identities=identities,
                                        passphrase=passphrase or None)
        name = file.filename or "file"
        name = name[:-4] if name.endswith(".age") else name + ".decrypted"
        return attachment(plain, name, "application/octet-stream")

    async def hash_file(self, file: Upload, expected: FormText = ""
                        ) -> dict[str, Any]:
        self.session.activity()
        data = await self._read_upload(file)
        found = await asyncio.to_thread(files.digests, data)
        result: dict[str, Any] = {"name": file.filename, "size": len(data), "digests": found}
        if expected.strip():
            result["verify"] = files.verify(found, expected)
        return result

    async def hash_text(self, body: HashTextBody) -> dict[str, Any]:
        self.session.activity()
        found = files.digests(body.text.encode("utf-8"))
        result: dict[str, Any] = {"size": len(body.text.encode()), "digests": found}
        if body.expected and body.expected.strip():
            result["verify"] = files.verify(found, body.expected)
        return result

    async def hmac(self, body: HmacBody) -> dict[str, Any]:
        self.session.activity()
        return files.mac(body.message.encode("utf-8"), body.key, algorithm=body.algorithm,
                         key_encoding=body.key_encoding, expected=body.expected)

    # -- import / export -----------------------------------------------------------
    @staticmethod
    def _build_imported(found: list[dict[str, Any]]) -> tuple[list[dict[str, Any]], list[str]]:
        """Entries from imported rows. Slow (zxcvbn scores each password), touches nothing
        shared: runs in a worker thread so a 2,000-entry import does not stall the app."""
        added: list[dict[str, Any]] = []
        warnings: list[str] = []
        for n, raw in enumerate(found, 1):
            if "skipped" in raw:
                warnings.append(f"entry {n}: skipped: {raw['skipped']}")
                continue
            notice = raw.get("notice")
            raw = {k: v for k, v in raw.items() if k != "notice"}
            row = {**raw, "title": raw["title"] or raw["username"] or "(untitled)"}
            if notice:
                warnings.append(f"entry {n} ({row['title'][:40]}): {notice}")
            changed = raw.get("changed")
            unread = row.pop("changed_unread", None)
            if unread is not None:
                # It counts as changed today: the "old password" check cannot judge it.
                warnings.append(f"entry {n} ({row['title'][:40]}): 'Last Modified' "
                                f"{unread[:40]!r} is no date; counted as changed today")
            try:
                added.append(entries.new_entry(EntryIn(**row), changed=changed))
            except (Problem, ValueError) as exc:
                # One bad TOTP field must not sink a 500-entry import: keep the entry
                # without it and say so.
                try:
                    added.append(entries.new_entry(EntryIn(**{**row, "totp": ""}),
                                                   changed=changed))
                    warnings.append(f"entry {n} ({row['title'][:40]}): TOTP dropped "
                                    f"({why(exc)})")
                except ValueError as again:
                    warnings.append(f"entry {n}: skipped ({why(again)})")
        return added, warnings

    async def _add_imported(self, found: list[dict[str, Any]]) -> dict[str, Any]:
        self.session.vault()
        added, warnings = await asyncio.to_thread(self._build_imported, found)
        vault = self.session.vault()  # again: it may have locked meanwhile
        vault.payload["entries"].extend(added)
        vault.save()
        self.ctx.logger.info("%d entries imported", len(added))
        return {"imported": len(added), "warnings": warnings}

    async def import_csv(self, body: CsvImportBody) -> dict[str, Any]:
        self.session.vault()
        kind, found = interop.read_csv(body.text)
        return {"format": kind, **await self._add_imported(found)}

    async def import_kdbx(self, file: Upload, password: FormText = "",
                          keyfile: OptionalUpload = None) -> dict[str, Any]:
        self.session.vault()
        data = await self._read_upload(file)
        key = await self._read_upload(keyfile, "keyfile") if keyfile is not None else None
        found = await asyncio.to_thread(interop.read_kdbx, data, password, key)
        return {"format": "kdbx", **await self._add_imported(found)}

    async def export(self, body: ExportBody) -> Response:
        items = self.session.vault().payload["entries"]
        if body.format == "kdbx":
            data = await asyncio.to_thread(
                interop.write_kdbx, items, body.password, time_cost=self.config.kdf_time_cost,
                memory_kib=self.config.kdf_memory_kib, parallelism=self.config.kdf_parallelism)
            return attachment(data, "vault-export.kdbx", "application/octet-stream")
        text = interop.write_csv(items, body.format)
        self.ctx.logger.warning("plain-text %s CSV export of %d entries", body.format,
                                len(items))
        return attachment(text.encode("utf-8"), f"vault-{body.format}.csv", "text/csv")

    # -- keys and secure messages --------------------------------------------------
    def _me(self) -> tuple[dict[str, Any], bytes]:
        payload = self._identity()
        private = payload["identity"]["x25519"]
        return payload, e2e.parse_public(e2e.public_text(private))

    async def keys(self) -> dict[str, Any]:
        import pyrage

        payload, mine = self._me()
        age_public = str(pyrage.x25519.Identity.from_str(payload["age_identity"]).to_public())
        published = None
        if self.api.user:
            try:
                published = await self._directory_key(self.api.user["id"]) == e2e.public_text(
                    payload["identity"]["x25519"])
            except Problem:
                published = None  # the directory is unreachable: say nothing about it
        return {"public_key": e2e.public_text(payload["identity"]["x25519"]),
                "fingerprint": e2e.fingerprint(mine), "age_recipient": age_public,
                "published": published,
                "contacts": [e2e.describe_contact(c, mine) for c in payload["contacts"]]}

    def _v1_user(self) -> dict[str, Any]:
        user = self.api.user
        if not user:
            raise Problem("v1", "nobody is logged in to PlexiChat: log in on the API "
                                "Integration page first", 409)
        return dict(user)

    async def _resolve(self, user_id: str, username: str) -> tuple[str, str]:
        from api_integration_layer.errors import ApiHTTPError

        try:
            if user_id:
                profile = await self.api.users.get(user_id)
                return profile.id, profile.username
            found = await self.api.users.search(username, limit=20)
        except ApiHTTPError as exc:
            if exc.status == 404:
                raise Problem("user_id", f"no PlexiChat user {user_id}", 404) from None
            raise Problem("v1", f"PlexiChat answered {exc.status}: {exc.detail}", 502) from None
        for user in found.users:
            if user.username.lower() == username.lower():
                return user.id, user.username
        raise Problem("username", f"no PlexiChat user named {username!r}", 404)

    async def _directory_key(self, user_id: str) -> str | None:
        """The ``stk1:`` key ``user_id`` published in the v1 key directory, or None."""
        from api_integration_layer.errors import ApiHTTPError

        try:
            found = await self.api.keys.get(user_id)
        except ApiHTTPError as exc:
            if exc.status == 404:
                raise Problem("user_id", f"no PlexiChat user {user_id}", 404) from None
            raise Problem("v1", f"PlexiChat answered {exc.status}: {exc.detail}", 502) from None
        for key in found.keys:
            if key.algorithm == "x25519":
                return e2e.from_directory(key.public_key)
        return None

    async def publish_key(self) -> dict[str, Any]:
        """Publish this vault's public key in the v1 key directory (idempotent)."""
        self._v1_user()
        _payload, mine = self._me()
        published = await self.api.keys.publish(e2e.directory_text(mine))
        self.ctx.logger.info("public key published in the v1 key directory")
        return {"published": True, "updated_at": published.updated_at.isoformat()
                if published.updated_at else None}

    async def add_contact(self, body: ContactBody) -> JSONResponse:
        """Pin a contact's public key: the one given (exchanged by hand) or, with none, the
        one they published in the v1 key directory (trust on first use; the safety number
        is what makes it verified)."""
        if body.public_key:
            e2e.parse_public(body.public_key)
        self._v1_user()
        user_id, username = await self._resolve(body.user_id, body.username)
        key = body.public_key.strip()
        source = "by hand"
        if not key:
            found = await self._directory_key(user_id)
            if found is None:
                raise Problem("public_key", f"{username} has not published a key: ask them "
                                            "to open the Security Toolkit, or for their key "
                                            "text", 404)
            key, source = found, "directory"
        payload, mine = self._me()
        contacts = payload["contacts"]
        existing = next((c for c in contacts if c["user_id"] == user_id), None)
        if existing is not None:
            if existing["public_key"] != key:
                # A new key for a known person: the safety number changes and the
                # contact is unverified again, as in Signal.
                existing.update(public_key=key, verified=False, added=now_iso())
            existing["source"] = source
            contact = existing
        else:
            contact = {"user_id": user_id, "username": username, "public_key": key,
                       "verified": False, "added": now_iso(), "source": source}
            contacts.append(contact)
        self.session.vault().save()
        return JSONResponse(e2e.describe_contact(contact, mine), status_code=201)

    def _contact(self, payload: dict[str, Any], user_id: str) -> dict[str, Any]:
        for contact in payload["contacts"]:
            if contact["user_id"] == user_id:
                return contact
        raise Problem("user_id", "no pinned key for this user: add their public key "
                                 "under Keys first", 404)

    async def verify_contact(self, user_id: str, body: VerifyBody) -> dict[str, Any]:
        payload, mine = self._me()
        contact = self._contact(payload, user_id)
        contact["verified"] = body.verified
        self.session.vault().save()
        return e2e.describe_contact(contact, mine)

    async def delete_contact(self, user_id: str) -> dict[str, Any]:
        payload, _ = self._me()
        payload["contacts"].remove(self._contact(payload, user_id))
        self.session.vault().save()
        return {"deleted": user_id}

    async def conversations(self) -> dict[str, Any]:
        me = self._v1_user()
        payload, _ = self._me()
        page = await self.api.messages.conversations(limit=50)
        pinned = {c["user_id"]: c for c in payload["contacts"]}
        return {"me": me, "conversations": [
            {"user_id": c.user_id, "username": c.username, "unread": c.unread_count,
             "pinned": c.user_id in pinned,
             "verified": bool(pinned.get(c.user_id, {}).get("verified"))}
            for c in page.conversations]}

    async def send_message(self, user_id: str, body: MessageBody) -> JSONResponse:
        me = self._v1_user()
        payload, _ = self._me()
        contact = self._contact(payload, user_id)
        published = await self._directory_key(user_id)
        if published is not None and published != contact["public_key"]:
            # They (or the server) published another key since we pinned this one: do not
            # send blindly; the user compares safety numbers and pins the new key.
            raise Problem("public_key", f"{contact['username']}'s published key changed "
                                        "since you pinned it: compare safety numbers, then "
                                        "pin the new key", 409)
        content = e2e.seal(body.text, payload["identity"]["x25519"],
                           e2e.parse_public(contact["public_key"]), me["id"], user_id)
        sent = await self.api.messages.send(user_id, content, encrypted=True)
        return JSONResponse({"id": sent.id, "encrypted": sent.encrypted,
                             "timestamp": sent.timestamp.isoformat()}, status_code=201)

    async def read_messages(self, user_id: str, limit: int = 50) -> dict[str, Any]:
        me = self._v1_user()
        payload, mine = self._me()
        private = payload["identity"]["x25519"]
        pinned = next((c for c in payload["contacts"] if c["user_id"] == user_id), None)
        # The newest page, shown oldest first.
        page = await self.api.messages.conversation(user_id, limit=max(1, min(limit, 100)),
                                                    order="desc")
        shown = []
        for message in reversed(page.messages):
            item: dict[str, Any] = {"id": message.id, "from_me": message.sender_id == me["id"],
                                    "timestamp": message.timestamp.isoformat(),
                                    "encrypted": message.encrypted}
            if not message.encrypted:
                item.update(text=message.content, trust="plain")
            else:
                try:
                    text, sender_key = e2e.open_sealed(message.content, private,
                                                       message.sender_id, message.recipient_id)
                    item["text"] = text
                    if item["from_me"]:
                        item["trust"] = "mine" if sender_key == mine else "old key"
                    elif pinned is None:
                        item["trust"] = "unknown key"
                    elif e2e.parse_public(pinned["public_key"]) != sender_key:
                        item["trust"] = "key changed"
                    else:
                        item["trust"] = "verified" if pinned.get("verified") else "unverified"
                except Problem as exc:
                    item.update(text=None, error=exc.message, trust="unreadable")
            shown.append(item)
        return {"user": {"id": page.other_user.id, "username": page.other_user.username},
                "contact": e2e.describe_contact(pinned, mine) if pinned else None,
                "messages": shown}
