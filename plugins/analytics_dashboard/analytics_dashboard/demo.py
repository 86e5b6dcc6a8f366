"""A year of synthetic PlexiChat activity, written straight into a v1 store.

For demos, the README screenshot and ``benchmarks/analytics_year.py``: the v1 API only
records "now", so a year of history has to be written as rows. The pattern is what a
small team's server looks like: weekdays busier than weekends, slow growth over the year,
Poisson-like noise, and three events the dashboard should catch (a burst of messages 12
days ago, a password-guessing burst of failed logins 3 days ago, a webhook receiver that
was down 20 days ago).

    from analytics_dashboard.demo import seed_year
    counts = await store.write(seed_year, owner_id)
"""

from __future__ import annotations

import datetime as dt
import math
import random
import sqlite3
import uuid
from typing import Any

DAY = 86400.0
EXTENSIONS = ((".pdf", "application/pdf", 420_000), (".png", "image/png", 180_000),
              (".csv", "text/csv", 12_000), (".docx", "application/octet-stream", 95_000),
              (".zip", "application/zip", 2_400_000), (".txt", "text/plain", 3_000))
WORDS = ("ok", "see you at the stand-up", "the build is green again", "can you review this?",
         "lunch?", "shipped", "I pushed the fix, please pull", "meeting moved to 3",
         "thanks!", "which branch is that on?")


def _poisson(rng: random.Random, mean: float) -> int:
    """A Poisson draw (Knuth for small means, a normal approximation for large ones)."""
    if mean <= 0:
        return 0
    if mean > 40:
        return max(0, round(rng.gauss(mean, math.sqrt(mean))))
    limit, k, p = math.exp(-mean), 0, 1.0
    while True:
        p *= rng.random()
        if p <= limit:
            return k
        k += 1


def seed_year(conn: sqlite3.Connection, owner_id: str, *, days: int = 365, users: int = 40,
              scale: float = 1.0, seed: int = 7) -> dict[str, int]:
    """Write ``days`` days of activity (ending yesterday, plus part of today) for
    ``users`` made-up users and the existing user ``owner_id``; the rows written per
    table. ``scale`` multiplies every daily rate."""
    rng = random.Random(seed)
    today = dt.datetime.now(dt.UTC).date()
    start = dt.datetime.combine(today - dt.timedelta(days=days), dt.time(), dt.UTC).timestamp()
    now = dt.datetime.now(dt.UTC).timestamp()
    people = []
    for i in range(users):
        uid = str(uuid.uuid4())
        joined = start + DAY * rng.uniform(0, days * 0.9) if i >= users // 3 else start - DAY
        name = f"{rng.choice(['ana', 'ben', 'chen', 'dara', 'eli', 'femi', 'gus', 'hana'])}{i}"
        conn.execute(
            "INSERT INTO users (id, username, email, password_hash, display_name, is_active, "
            "is_admin, created_at, updated_at) VALUES (?, ?, ?, '!', ?, 1, 0, ?, ?)",
            (uid, name, f"{name}@demo.invalid", name.title(), joined, joined))
        people.append((uid, joined, rng.uniform(0.3, 2.5)))  # how chatty they are
    hook = str(uuid.uuid4())
    conn.execute("INSERT INTO webhooks (id, owner_id, url, events, secret, created_at) "
                 "VALUES (?, ?, 'https://hooks.demo.invalid/in', '[\"*\"]', ?, ?)",
                 (hook, owner_id, uuid.uuid4().hex, start))
    rows: dict[str, list[tuple[Any, ...]]] = {k: [] for k in (
        "messages", "files", "activity", "searches", "webhook_deliveries")}
    for day in range(days + 1):
        base = start + day * DAY
        weekday = dt.datetime.fromtimestamp(base, dt.UTC).weekday()
        growth = 0.7 + 0.6 * day / days                       # busier as the year goes on
        week = 0.45 if weekday >= 5 else 1.0
        part = min(1.0, max(0.0, (now - base) / DAY))          # today: only the hours so far
        rate = scale * growth * week * part
        ago = days - day
        members = [p for p in people if p[1] <= base + DAY] or people[:1]
        weights = [p[2] for p in members]

        def who(k: int, members: list[Any] = members, weights: list[float] = weights
                ) -> list[str]:
            return [p[0] for p in rng.choices(members, weights, k=k)] if k else []

        def at(base: float = base, part: float = part) -> float:
            # office hours, mostly
            return base + DAY * min(part, max(0.0, rng.gauss(0.55, 0.17))) * 0.999

        messages = _poisson(rng, 110 * rate * (3.6 if ago == 12 else 1.0))
        for sender, recipient in zip(who(messages), who(messages), strict=True):
            rows["messages"].append((str(uuid.uuid4()), sender, recipient,
                                     rng.choice(WORDS), "text", at()))
        for owner in who(_poisson(rng, 14 * rate)):
            ext, ctype, size = rng.choice(EXTENSIONS)
            rows["files"].append((str(uuid.uuid4()), owner, f"file{len(rows['files'])}{ext}",
                                  ext, ctype, int(size * rng.uniform(0.2, 1.8)),
                                  uuid.uuid4().hex * 2, rng.randint(0, 9), at()))
        for uid in who(_poisson(rng, 26 * rate)):
            rows["activity"].append((uid, "login", at()))
        failed = _poisson(rng, 3 * rate) + (85 if ago == 3 else 0)
        for uid in who(failed):
            rows["activity"].append((uid, "login_failed", at()))
        for uid in who(_poisson(rng, 22 * rate)):
            rows["searches"].append((uid, rng.choice(WORDS)[:20], "all", rng.randint(0, 40),
                                     at()))
        for _ in range(_poisson(rng, 18 * rate)):
            down = ago == 20
            status = "failed" if (down or rng.random() < 0.03) else "delivered"
            t = at()
            rows["webhook_deliveries"].append((str(uuid.uuid4()), hook, "message.received",
                                               "{}", status, 1 if status == "delivered" else 5,
                                               t, t))
    conn.executemany("INSERT INTO messages (id, sender_id, recipient_id, content, "
                     "message_type, created_at) VALUES (?, ?, ?, ?, ?, ?)", rows["messages"])
    conn.executemany("INSERT INTO files (id, owner_id, filename, extension, content_type, "
                     "size, sha256, download_count, created_at) VALUES (?, ?, ?, ?, ?, ?, ?, "
                     "?, ?)", rows["files"])
    conn.executemany("INSERT INTO activity (user_id, kind, created_at) VALUES (?, ?, ?)",
                     rows["activity"])
    conn.executemany("INSERT INTO searches (user_id, query, type, results, created_at) "
                     "VALUES (?, ?, ?, ?, ?)", rows["searches"])
    conn.executemany("INSERT INTO webhook_deliveries (id, webhook_id, event, payload, status, "
                     "attempt_count, created_at, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                     rows["webhook_deliveries"])
    return {"users": users, **{k: len(v) for k, v in rows.items()}}
