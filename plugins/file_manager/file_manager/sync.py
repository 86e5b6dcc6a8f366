"""Two-way sync of a local folder with the PlexiChat v1 files API ("cloud").

Like rclone bisync it keeps a baseline (what both sides held after the last sync) and
classifies every path as new, changed or deleted on each side. Unlike bisync, nothing is
written from a plan the user has not seen: :func:`make_plan` only reads, and
:func:`apply_plan` performs exactly the items the user approved, each re-checked against
the state the plan saw (a file changed since then is skipped, not overwritten).

The v1 files API has no folders and no update, so a cloud file belongs to a synced
folder through its description, ``fm-sync:<cloud name>:<relative path>``; a change is an
upload of the new content followed by the deletion of the old file. Files the server
would refuse (type, size, from ``/system/capabilities``) are listed as skipped with the
reason, and so are those it refuses during the sync. Uploads are verified by the SHA-256
the server computes; downloads by its ``X-Content-SHA256`` and by the plan's hash.
Deleting a local file sends it to the trash.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import hashlib
import json
import os
import re
import secrets
import stat
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from plexichat_desktop.plugins.files import write_atomic
from plexichat_desktop.plugins.guards import safe_path

TAG = "fm-sync:"
CLOUD_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9 _.-]{0,63}$")
PAGE = 100

ACTIONS = ("upload", "update-cloud", "download", "update-local", "delete-cloud",
           "delete-local", "conflict")


@dataclass
class Side:
    sha256: str
    size: int
    mtime_ns: int | None = None  # local only
    id: str | None = None  # cloud only


@dataclass
class PlanItem:
    path: str
    action: str
    reason: str
    local: Side | None
    cloud: Side | None
    approved: bool  # the default the page shows: deletes start unticked

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class Plan:
    id: str
    folder: str
    cloud: str
    items: list[PlanItem]
    skipped: list[dict[str, str]]
    unchanged: int
    created_at: float = field(default_factory=time.time)
    # Identical on both sides but not (yet) in the baseline: recorded when the plan is
    # applied, so a later edit on one side is an update, not a conflict.
    settle: list[tuple[str, Side, Side]] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        counts: dict[str, int] = {}
        for item in self.items:
            counts[item.action] = counts.get(item.action, 0) + 1
        return {"id": self.id, "folder": self.folder, "cloud": self.cloud,
                "items": [i.to_dict() for i in self.items], "skipped": self.skipped,
                "unchanged": self.unchanged, "counts": counts, "created_at": self.created_at}


class Baseline:
    """What both sides held after the last sync, per relative path; a JSON file."""

    def __init__(self, path: Path):
        self.path = path
        self.entries: dict[str, dict[str, Any]] = {}
        if path.exists():
            self.entries = json.loads(path.read_text("utf-8")).get("entries", {})

    def save(self) -> None:
        write_atomic(self.path, json.dumps({"version": 1, "entries": self.entries}, indent=1))


def baseline_file(data_dir: Path, folder: Path, cloud: str) -> Path:
    key = hashlib.sha256(f"{folder}\0{cloud}".encode()).hexdigest()[:24]
    return data_dir / "sync" / f"{key}.json"


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        while chunk := fh.read(1024 * 1024):
            h.update(chunk)
    return h.hexdigest()


def scan_local(folder: Path, baseline: Baseline) -> dict[str, Side]:
    """Every regular file under ``folder`` (hidden names and symlinks left out). A file
    whose size and mtime match the baseline keeps the baseline's hash instead of being
    read again."""
    out: dict[str, Side] = {}
    for here, dirs, files in os.walk(folder):
        dirs[:] = sorted(d for d in dirs if not d.startswith("."))
        for name in sorted(files):
            if name.startswith("."):
                continue
            path = Path(here) / name
            st = path.lstat()
            if not stat.S_ISREG(st.st_mode):
                continue
            rel = path.relative_to(folder).as_posix()
            known = baseline.entries.get(rel)
            if known and known.get("size") == st.st_size and \
                    known.get("mtime_ns") == st.st_mtime_ns:
                sha = known["sha256"]
            else:
                sha = _sha256(path)
            out[rel] = Side(sha, st.st_size, st.st_mtime_ns)
    return out


def safe_rel(rel: str) -> bool:
    """A plain relative POSIX path of named parts: no absolute path, no "." or "..",
    no empty part, no backslash or NUL."""
    if not rel or rel.startswith("/") or "\\" in rel or "\x00" in rel:
        return False
    return all(part not in ("", ".", "..") for part in rel.split("/"))


async def scan_cloud(api: Any, cloud: str) -> dict[str, Side]:
    """The user's own cloud files tagged for ``cloud``; the newest wins a duplicate."""
    prefix = f"{TAG}{cloud}:"
    out: dict[str, tuple[Side, Any]] = {}
    offset = 0
    while True:
        page = await api.files.list(scope="own", limit=PAGE, offset=offset)
        for info in page.files:
            if not info.description or not info.description.startswith(prefix):
                continue
            rel = info.description[len(prefix):]
            if not safe_rel(rel):
                # The name comes from the server: one that would land outside the synced
                # folder (absolute, "..", backslashes) is never used as a local path.
                continue
            side = Side(info.sha256 or "", info.size, None, info.id)
            seen = out.get(rel)
            if seen is None or (info.uploaded_at or dt.datetime.min) > seen[1]:
                out[rel] = (side, info.uploaded_at or dt.datetime.min)
        if not page.has_more or not page.files:
            break
        offset += len(page.files)
    return {rel: side for rel, (side, _when) in out.items()}


@dataclass(frozen=True)
class Limits:
    """What the server accepts (``/system/capabilities``)."""

    max_upload_bytes: int | None
    allowed_types: frozenset[str] | None

    def refusal(self, rel: str, size: int) -> str | None:
        suffix = Path(rel).suffix.lower()
        if self.allowed_types is not None and suffix not in self.allowed_types:
            return f"type '{suffix or '(none)'}' is not allowed by the server"
        if self.max_upload_bytes is not None and size > self.max_upload_bytes:
            return (f"{size} bytes, over the server's upload limit of "
                    f"{self.max_upload_bytes} bytes")
        return None


async def server_limits(api: Any) -> Limits:
    try:
        caps = await api.system.capabilities()
    except Exception:  # an older server without /system/capabilities: learn by refusals
        return Limits(None, None)
    files = (caps.model_extra or {}).get("files") or {}
    types = files.get("allowed_types")
    return Limits(files.get("max_upload_bytes"),
                  frozenset(t.lower() for t in types) if types else None)


def classify(local: dict[str, Side], cloud: dict[str, Side], baseline: Baseline,
             limits: Limits) -> tuple[list[PlanItem], list[dict[str, str]], int]:
    """The plan's items, the skipped paths (with reasons) and the unchanged count."""
    items: list[PlanItem] = []
    skipped: list[dict[str, str]] = []
    unchanged = 0
    for rel in sorted(set(local) | set(cloud) | set(baseline.entries)):
        lo, cl, base = local.get(rel), cloud.get(rel), baseline.entries.get(rel)
        base_sha = base["sha256"] if base else None
        l_state = _state(lo, base_sha)
        c_state = _state(cl, base_sha)
        action, reason = _decide(l_state, c_state, lo, cl)
        if action is None:
            if lo is not None and cl is not None:
                unchanged += 1
            continue
        if action in ("upload", "update-cloud", "conflict") and lo is not None:
            refused = limits.refusal(rel, lo.size)
            if refused:
                skipped.append({"path": rel, "reason": refused, "action": action})
                continue
        items.append(PlanItem(rel, action, reason, lo, cl,
                              approved=not action.startswith("delete")))
    return items, skipped, unchanged


def _state(side: Side | None, base_sha: str | None) -> str:
    if side is None:
        return "deleted" if base_sha else "absent"
    if base_sha is None:
        return "new"
    return "same" if side.sha256 == base_sha else "changed"


def _decide(l_state: str, c_state: str, lo: Side | None,
            cl: Side | None) -> tuple[str | None, str]:
    if lo and cl and lo.sha256 == cl.sha256:
        return None, "identical"
    table: dict[tuple[str, str], tuple[str | None, str]] = {
        ("new", "absent"): ("upload", "new here"),
        ("absent", "new"): ("download", "new in the cloud"),
        ("changed", "same"): ("update-cloud", "changed here"),
        ("same", "changed"): ("update-local", "changed in the cloud"),
        ("deleted", "same"): ("delete-cloud", "deleted here"),
        ("same", "deleted"): ("delete-local", "deleted in the cloud"),
        ("deleted", "changed"): ("download", "deleted here but changed in the cloud"),
        ("changed", "deleted"): ("upload", "deleted in the cloud but changed here"),
        ("new", "new"): ("conflict", "new on both sides with different content"),
        ("changed", "changed"): ("conflict", "changed on both sides"),
        ("deleted", "deleted"): (None, "deleted on both sides"),
        ("same", "same"): (None, "unchanged"),
    }
    return table.get((l_state, c_state), (None, f"{l_state}/{c_state}"))


def conflict_name(rel: str, when: float | None = None) -> str:
    """``notes (cloud conflict 2026-12-06 0712).txt`` next to ``notes.txt``."""
    stamp = time.strftime("%Y-%m-%d %H%M", time.localtime(when or time.time()))
    p = Path(rel)
    return p.with_name(f"{p.stem} (cloud conflict {stamp}){p.suffix}").as_posix()


async def make_plan(api: Any, folder: Path, cloud: str, baseline: Baseline) -> Plan:
    """Read both sides and the baseline; write nothing."""
    local = await asyncio.to_thread(scan_local, folder, baseline)
    remote = await scan_cloud(api, cloud)
    limits = await server_limits(api)
    items, skipped, unchanged = classify(local, remote, baseline, limits)
    settle = [(rel, lo, remote[rel]) for rel, lo in local.items()
              if rel in remote and remote[rel].sha256 == lo.sha256
              and (baseline.entries.get(rel) or {}).get("sha256") != lo.sha256]
    return Plan(secrets.token_hex(8), str(folder), cloud, items, skipped, unchanged,
                settle=settle)


def _error_text(exc: BaseException) -> str:
    detail = getattr(exc, "detail", None)
    status = getattr(exc, "status", None)
    if status is not None:
        return f"the server refused it ({status}): {detail}"
    return f"{type(exc).__name__}: {exc}"


class Applier:
    """Performs approved plan items one by one, each checked, verified and recorded."""

    def __init__(self, api: Any, folder: Path, plan: Plan, baseline: Baseline,
                 trash: Any, progress: Any):
        self.api, self.folder, self.plan, self.baseline = api, folder, plan, baseline
        self.trash = trash
        self.progress = progress
        self.done: list[dict[str, str]] = []
        self.skipped: list[dict[str, str]] = []

    def _path(self, rel: str) -> Path:
        """The local file for ``rel``, never outside the synced folder (symlinks
        included): a plan or baseline entry that would leave it is refused."""
        return safe_path(self.folder, rel, field="path")

    def _local_now(self, rel: str) -> Side | None:
        path = self._path(rel)
        try:
            st = path.lstat()
        except FileNotFoundError:
            return None
        if not stat.S_ISREG(st.st_mode):
            return None
        return Side(_sha256(path), st.st_size, st.st_mtime_ns)

    async def run(self, approved: list[PlanItem]) -> dict[str, Any]:
        remote_now = await scan_cloud(self.api, self.plan.cloud)
        # Paths deleted on both sides since the last sync: nothing to do but forget them.
        local_paths = await asyncio.to_thread(
            lambda: {rel for rel in self.baseline.entries
                     if safe_rel(rel) and self._path(rel).exists()})
        for rel in list(self.baseline.entries):
            if rel not in local_paths and rel not in remote_now:
                del self.baseline.entries[rel]
        for rel, lo, cl in self.plan.settle:
            now = remote_now.get(rel)
            try:
                st = self._path(rel).stat()
            except (OSError, ValueError):  # gone, or a name that would leave the folder
                continue
            if now is not None and now.sha256 == cl.sha256 and st.st_size == lo.size \
                    and st.st_mtime_ns == lo.mtime_ns:
                self._record(rel, lo.sha256, lo.size, lo.mtime_ns, now.id)
        await asyncio.to_thread(self.baseline.save)
        for n, item in enumerate(approved, 1):
            self.progress(n - 1, len(approved), f"{item.action} {item.path}")
            local_now = await asyncio.to_thread(self._local_now, item.path)
            if not _same(local_now, item.local) or not _same(remote_now.get(item.path),
                                                             item.cloud):
                self.skipped.append({"path": item.path, "action": item.action,
                                     "reason": "changed since the plan; plan again"})
                continue
            try:
                await self._one(item)
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                self.skipped.append({"path": item.path, "action": item.action,
                                     "reason": _error_text(exc)})
            else:
                self.done.append({"path": item.path, "action": item.action})
            finally:
                await asyncio.to_thread(self.baseline.save)
        self.progress(len(approved), len(approved), "sync done")
        return {"done": self.done, "skipped": self.skipped}

    async def _upload(self, rel: str, local: Side, replace: Side | None) -> Side:
        path = self._path(rel)
        info = await self.api.files.upload(path, path.name,
                                           description=f"{TAG}{self.plan.cloud}:{rel}")
        if info.sha256 and info.sha256 != local.sha256:
            await self.api.files.delete(info.id)
            raise RuntimeError(f"the server stored SHA-256 {info.sha256}, not "
                               f"{local.sha256}; the upload was removed")
        if replace is not None and replace.id:
            await self.api.files.delete(replace.id)
        return Side(local.sha256, local.size, None, info.id)

    async def _download(self, rel: str, cloud: Side, target_rel: str | None = None) -> Side:
        target = self._path(target_rel or rel)
        target.parent.mkdir(parents=True, exist_ok=True)
        tmp = target.with_name(f".{target.name}.fm-part-{secrets.token_hex(4)}")
        try:
            assert cloud.id is not None
            await self.api.files.download_to(cloud.id, tmp)  # checks X-Content-SHA256
            got = await asyncio.to_thread(_sha256, tmp)
            if got != cloud.sha256:
                raise RuntimeError(f"downloaded SHA-256 {got} differs from the planned "
                                   f"{cloud.sha256}")
            os.replace(tmp, target)
        finally:
            tmp.unlink(missing_ok=True)
        st = target.stat()
        return Side(cloud.sha256, st.st_size, st.st_mtime_ns, cloud.id)

    def _record(self, rel: str, sha: str, size: int, mtime_ns: int | None,
                cloud_id: str | None) -> None:
        self.baseline.entries[rel] = {"sha256": sha, "size": size, "mtime_ns": mtime_ns,
                                      "cloud_id": cloud_id}

    async def _one(self, item: PlanItem) -> None:
        rel, lo, cl = item.path, item.local, item.cloud
        if item.action in ("upload", "update-cloud") and lo is not None:
            up = await self._upload(rel, lo, cl)
            self._record(rel, lo.sha256, lo.size, lo.mtime_ns, up.id)
        elif item.action in ("download", "update-local") and cl is not None:
            down = await self._download(rel, cl)
            self._record(rel, cl.sha256, down.size, down.mtime_ns, cl.id)
        elif item.action == "delete-cloud" and cl is not None and cl.id:
            await self.api.files.delete(cl.id)
            self.baseline.entries.pop(rel, None)
        elif item.action == "delete-local":
            await asyncio.to_thread(self.trash, self._path(rel))
            self.baseline.entries.pop(rel, None)
        elif item.action == "conflict" and lo is not None and cl is not None:
            # Keep both: the cloud's version lands next to the local file under a
            # conflict name (uploaded by the next sync), the local one goes up.
            await self._download(rel, cl, conflict_name(rel))
            up = await self._upload(rel, lo, cl)
            self._record(rel, lo.sha256, lo.size, lo.mtime_ns, up.id)
        else:
            raise RuntimeError(f"nothing to do for {item.action} without both sides")


def _same(now: Side | None, planned: Side | None) -> bool:
    if now is None or planned is None:
        return now is None and planned is None
    return now.sha256 == planned.sha256
