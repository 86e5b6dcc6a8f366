"""``/groups``: groups, channels and private groups with members and invitations.

Visibility: a public group is visible to everyone; a non-public one only to its members and
to the users invited to it. Anything invisible is 404 (its existence is not revealed);
visible but not allowed (editing someone else's group) is 403.
"""

from __future__ import annotations

import sqlite3
from typing import Annotated, Any, Literal

from fastapi import APIRouter, HTTPException
from pydantic import Field

from plexichat_desktop.server.v1 import accounts
from plexichat_desktop.server.v1.common import (
    Body,
    Offset,
    conflict,
    done,
    forbidden,
    invalid,
    iso,
    limit_query,
    new_id,
    now,
    or_404,
    owned,
    page,
    sent_fields,
)
from plexichat_desktop.server.v1.deps import Api, User
from plexichat_desktop.server.v1.hub import frame
from plexichat_desktop.server.v1.routes.notifications import insert_notification
from plexichat_desktop.server.v1.store import one, rows, scalar

router = APIRouter(prefix="/groups", tags=["groups"])

GroupType = Literal["group", "channel", "private"]
VISIBLE_SQL = ("(g.is_public = 1 OR EXISTS (SELECT 1 FROM group_members m WHERE "
               "m.group_id = g.id AND m.user_id = :me) OR EXISTS (SELECT 1 FROM group_invites i "
               "WHERE i.group_id = g.id AND i.user_id = :me))")
SELECT = ("SELECT g.*, (SELECT COUNT(*) FROM group_members m WHERE m.group_id = g.id) "
          "AS member_count, (SELECT role FROM group_members m WHERE m.group_id = g.id AND "
          "m.user_id = :me) AS my_role, EXISTS (SELECT 1 FROM group_invites i WHERE "
          "i.group_id = g.id AND i.user_id = :me) AS invited FROM groups g")


class CreateBody(Body):
    name: str = Field(min_length=1, max_length=100)
    description: str | None = Field(None, max_length=1000)
    type: GroupType = "group"
    is_public: bool | None = Field(None, description="Default: true, false for 'private'.")
    max_members: int = Field(100, ge=2, le=10_000)


class UpdateBody(Body):
    name: str | None = Field(None, min_length=1, max_length=100)
    description: str | None = Field(None, max_length=1000)
    is_public: bool | None = None
    max_members: int | None = Field(None, ge=2, le=10_000)


class InviteBody(Body):
    user_ids: list[str] = Field(min_length=1, max_length=100)
    message: str | None = Field(None, max_length=500)


def group_dict(row: dict[str, Any]) -> dict[str, Any]:
    """``Group``, with the caller's relation to it."""
    return {
        "id": row["id"], "name": row["name"], "description": row["description"],
        "type": row["type"], "is_public": bool(row["is_public"]),
        "max_members": row["max_members"], "owner_id": row["owner_id"],
        "member_count": row["member_count"], "created_at": iso(row["created_at"]),
        "updated_at": iso(row["updated_at"]), "is_member": row["my_role"] is not None,
        "role": row["my_role"], "invited": bool(row["invited"]),
    }


def _get(conn: sqlite3.Connection, group_id: str, me: str) -> dict[str, Any] | None:
    return one(conn.execute(f"{SELECT} WHERE g.id = :id AND {VISIBLE_SQL}",
                            {"id": group_id, "me": me}))


def _create(conn: sqlite3.Connection, me: str, body: CreateBody, public: bool
            ) -> dict[str, Any]:
    current = now()
    group_id = new_id()
    conn.execute(
        "INSERT INTO groups (id, name, description, type, is_public, max_members, owner_id, "
        "created_at, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
        (group_id, body.name, body.description, body.type, int(public), body.max_members, me,
         current, current))
    conn.execute("INSERT INTO group_members (group_id, user_id, role, joined_at) "
                 "VALUES (?, ?, 'owner', ?)", (group_id, me, current))
    row = _get(conn, group_id, me)
    assert row is not None
    return row


@router.post("/create", status_code=201)
async def create(body: CreateBody, user: User, api: Api) -> dict[str, Any]:
    """Create a group; the caller becomes its owner and first member."""
    if not body.name.strip():
        raise invalid("name", "name must not be blank", body.name)
    public = body.is_public if body.is_public is not None else body.type != "private"
    if body.type == "private" and public:
        raise invalid("is_public", "a private group cannot be public", True)
    return group_dict(await api.store.write(_create, user.id, body, public))


def _list(conn: sqlite3.Connection, me: str, kind: str | None, public_only: bool,
          mine_only: bool, limit: int, offset: int) -> tuple[list[dict[str, Any]], int]:
    where = [VISIBLE_SQL]
    args: dict[str, Any] = {"me": me, "limit": limit, "offset": offset}
    if kind:
        where.append("g.type = :kind")
        args["kind"] = kind
    if public_only:
        where.append("g.is_public = 1")
    if mine_only:
        where.append("EXISTS (SELECT 1 FROM group_members m WHERE m.group_id = g.id AND "
                     "m.user_id = :me)")
    clause = " AND ".join(where)
    total = scalar(conn, f"SELECT COUNT(*) FROM groups g WHERE {clause}", args)
    found = rows(conn.execute(f"{SELECT} WHERE {clause} ORDER BY g.seq DESC "
                              f"LIMIT :limit OFFSET :offset", args))
    return found, total


@router.get("/")
@router.get("", include_in_schema=False)
async def list_groups(
    user: User, api: Api, type: GroupType | None = None, public_only: bool = False,
    limit: Annotated[int, limit_query(50, 100)] = 50, offset: Offset = 0,
) -> dict[str, Any]:
    """Groups the caller can see (public ones, their own, those they are invited to)."""
    found, total = await api.store.read(_list, user.id, type, public_only, False, limit,
                                        offset)
    return page("groups", [group_dict(r) for r in found], total, limit, offset)


@router.get("/stats")
async def stats(user: User, api: Api) -> dict[str, Any]:
    """Counts of the groups the caller can see and belongs to."""
    def query(conn: sqlite3.Connection) -> dict[str, Any]:
        args = {"me": user.id}
        visible = scalar(conn, f"SELECT COUNT(*) FROM groups g WHERE {VISIBLE_SQL}", args)
        public = scalar(conn, "SELECT COUNT(*) FROM groups WHERE is_public = 1")
        mine = scalar(conn, "SELECT COUNT(*) FROM group_members WHERE user_id = :me", args)
        owned = scalar(conn, "SELECT COUNT(*) FROM groups WHERE owner_id = :me", args)
        invites = scalar(conn, "SELECT COUNT(*) FROM group_invites WHERE user_id = :me", args)
        by_type = {r[0]: r[1] for r in conn.execute(
            f"SELECT g.type, COUNT(*) FROM groups g WHERE {VISIBLE_SQL} GROUP BY g.type",
            args)}
        return {"total_groups": visible, "public_groups": public, "my_groups": mine,
                "owned_groups": owned, "pending_invites": invites, "by_type": by_type}
    return await api.store.read(query)


@router.get("/my/groups")
async def my_groups(user: User, api: Api, limit: Annotated[int, limit_query(50, 100)] = 50,
                    offset: Offset = 0) -> dict[str, Any]:
    """Groups the caller is a member of."""
    found, total = await api.store.read(_list, user.id, None, False, True, limit, offset)
    return page("groups", [group_dict(r) for r in found], total, limit, offset)


@router.get("/{group_id}")
async def get_group(group_id: str, user: User, api: Api) -> dict[str, Any]:
    row = await api.store.read(_get, group_id, user.id)
    return group_dict(or_404(row, "group", group_id))


def _update(conn: sqlite3.Connection, group_id: str, me: str, changes: dict[str, Any]
            ) -> dict[str, Any]:
    row = owned(_get(conn, group_id, me), me, "group", group_id,
                "only the owner can change a group")
    if changes.get("is_public") and row["type"] == "private":
        raise invalid("is_public", "a private group cannot be public", True)
    if "max_members" in changes and changes["max_members"] < row["member_count"]:
        raise conflict(f"max_members: the group already has {row['member_count']} members")
    if changes:
        if "is_public" in changes:
            changes["is_public"] = int(changes["is_public"])
        columns = ", ".join(f"{name} = :{name}" for name in changes)
        conn.execute(f"UPDATE groups SET {columns}, updated_at = :now WHERE id = :id",
                     {**changes, "now": now(), "id": group_id})
    updated = _get(conn, group_id, me)
    assert updated is not None
    return updated


@router.put("/{group_id}")
async def update(group_id: str, body: UpdateBody, user: User, api: Api) -> dict[str, Any]:
    """Change a group (owner only); returns the updated group."""
    changes = sent_fields(body, not_null=("name", "is_public", "max_members"))
    if "name" in changes and not changes["name"].strip():
        raise invalid("name", "name must not be blank", changes["name"])
    return group_dict(await api.store.write(_update, group_id, user.id, changes))


def _delete(conn: sqlite3.Connection, group_id: str, me: str) -> None:
    owned(_get(conn, group_id, me), me, "group", group_id, "only the owner can delete a group")
    conn.execute("DELETE FROM groups WHERE id = ?", (group_id,))


@router.delete("/{group_id}")
async def delete(group_id: str, user: User, api: Api) -> dict[str, Any]:
    """Delete a group (owner only)."""
    await api.store.write(_delete, group_id, user.id)
    api.hub.evict(group_id, reason="the group was deleted")
    return done("Group deleted", group_id=group_id)


def _join(conn: sqlite3.Connection, group_id: str, me: str) -> dict[str, Any]:
    row = or_404(_get(conn, group_id, me), "group", group_id)
    if row["my_role"] is not None:
        raise conflict("already a member of this group")
    if row["member_count"] >= row["max_members"]:
        raise conflict(f"the group is full ({row['max_members']} members)")
    conn.execute("INSERT INTO group_members (group_id, user_id, role, joined_at) "
                 "VALUES (?, ?, 'member', ?)", (group_id, me, now()))
    conn.execute("DELETE FROM group_invites WHERE group_id = ? AND user_id = ?",
                 (group_id, me))
    joined = _get(conn, group_id, me)
    assert joined is not None
    return joined


@router.post("/{group_id}/join")
async def join(group_id: str, user: User, api: Api) -> dict[str, Any]:
    """Join a public group, or a non-public one the caller was invited to."""
    row = await api.store.write(_join, group_id, user.id)
    api.hub.to_room(group_id, frame("group_member_joined", group_id=group_id,
                                    user_id=user.id, username=user.username))
    return done("Joined the group", group=group_dict(row))


def _leave(conn: sqlite3.Connection, group_id: str, me: str) -> None:
    row = or_404(_get(conn, group_id, me), "group", group_id)
    if row["my_role"] is None:
        raise conflict("not a member of this group")
    if row["owner_id"] == me:
        raise conflict("the owner cannot leave the group; delete it instead")
    conn.execute("DELETE FROM group_members WHERE group_id = ? AND user_id = ?",
                 (group_id, me))


@router.post("/{group_id}/leave")
async def leave(group_id: str, user: User, api: Api) -> dict[str, Any]:
    """Leave a group (its owner cannot)."""
    await api.store.write(_leave, group_id, user.id)
    api.hub.evict(group_id, user.id, reason="you left the group")
    return done("Left the group", group_id=group_id)


def _invite(conn: sqlite3.Connection, group_id: str, me: str, body: InviteBody
            ) -> tuple[dict[str, Any], list[str], list[str], list[dict[str, Any]]]:
    row = or_404(_get(conn, group_id, me), "group", group_id)
    if row["my_role"] is None:
        raise forbidden("only members can invite to a group")
    wanted = list(dict.fromkeys(body.user_ids))
    known = accounts.existing_ids(conn, wanted)
    unknown = [uid for uid in wanted if uid not in known]
    if unknown:
        raise HTTPException(404, f"user_ids: unknown user(s) {', '.join(unknown)}")
    members = {r[0] for r in conn.execute("SELECT user_id FROM group_members WHERE "
                                          "group_id = ?", (group_id,))}
    invited, already = [], []
    notes: list[dict[str, Any]] = []
    for uid in wanted:
        if uid in members:
            already.append(uid)
            continue
        conn.execute("INSERT INTO group_invites (group_id, user_id, invited_by, message, "
                     "created_at) VALUES (?, ?, ?, ?, ?) ON CONFLICT DO NOTHING",
                     (group_id, uid, me, body.message, now()))
        invited.append(uid)
        notes.append(insert_notification(
            conn, uid, me, title=f"Invitation to {row['name']}",
            message=body.message or f"You are invited to join {row['name']}.",
            kind="group_invite", priority="normal",
            action_url=f"/api/v1/groups/{group_id}/join",
            metadata={"group_id": group_id}))
    return row, invited, already, notes


@router.post("/{group_id}/invite")
async def invite(group_id: str, body: InviteBody, user: User, api: Api) -> dict[str, Any]:
    """Invite users (members only); each invitee gets a notification. Members already in
    the group are reported, not invited again."""
    row, invited, already, notes = await api.store.write(_invite, group_id, user.id, body)
    for note in notes:
        api.hub.to_user(note["user_id"], frame("notification", **note))
    if invited:
        api.emit("group.invited", {"group_id": group_id, "group_name": row["name"],
                                   "invited_by": user.id, "user_ids": invited},
                 [user.id, *invited])
    return done("Invitations sent", group_id=group_id, invited_users=invited,
                already_members=already, total_invited=len(invited))


def _members(conn: sqlite3.Connection, group_id: str, me: str, limit: int, offset: int
             ) -> tuple[dict[str, Any] | None, list[dict[str, Any]], int]:
    row = _get(conn, group_id, me)
    if row is None:
        return None, [], 0
    found = rows(conn.execute(
        "SELECT m.user_id, u.username, u.display_name, m.role, m.joined_at FROM group_members "
        "m JOIN users u ON u.id = m.user_id WHERE m.group_id = ? ORDER BY "
        "CASE m.role WHEN 'owner' THEN 0 ELSE 1 END, m.joined_at LIMIT ? OFFSET ?",
        (group_id, limit, offset)))
    return row, found, row["member_count"]


@router.get("/{group_id}/members")
async def members(group_id: str, user: User, api: Api,
                  limit: Annotated[int, limit_query(50, 100)] = 50,
                  offset: Offset = 0) -> dict[str, Any]:
    """Members of a group the caller can see, owner first."""
    row, found, total = await api.store.read(_members, group_id, user.id, limit, offset)
    or_404(row, "group", group_id)
    items = [{"user_id": r["user_id"], "username": r["username"],
              "display_name": r["display_name"] or r["username"], "role": r["role"],
              "joined_at": iso(r["joined_at"]), "is_online": api.hub.is_online(r["user_id"])}
             for r in found]
    return page("members", items, total, limit, offset, group_id=group_id)
