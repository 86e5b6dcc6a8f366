"""Every endpoint of the PlexiChat v1 API the client knows, with the scope it needs.

One table drives the client: the HTTP method and path, whether a token is sent, the API
scope a plugin must declare to call it, whether its answers may be cached and which cached
resources a successful call makes stale. Paths are relative to the base URL
(``.../api/v1``) and are written exactly as the server's discovery lists them.

Scopes are ``<group>:read`` for reading and ``<group>:write`` for changing, per endpoint
group, plus ``users:delete`` (deleting the account) and ``auth:write`` (log in, log out,
register: the session every plugin shares). ``<group>:*`` grants a whole group and ``*``
everything.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

IDEMPOTENT_METHODS = frozenset({"GET", "HEAD", "OPTIONS", "PUT", "DELETE"})

# What each scope allows, shown on the plugin's page and in its README.
SCOPES: dict[str, str] = {
    "auth:read": "read the current account (/auth/me) and the auth service status",
    "auth:write": "register accounts, log in and out (the session all plugins share)",
    "auth:mfa": "read the account's 2FA status; set up, confirm and disable 2FA, make new "
                "recovery codes",
    "auth:password": "change the password, reset it with a reset token or recovery code, "
                     "issue reset tokens (administrators)",
    "auth:sessions": "list and sign out the account's sessions, read its security log",
    "users:read": "read profiles, search and list users, user statistics",
    "users:write": "change the current user's profile",
    "users:delete": "delete the current user's account and everything it owns",
    "users:export": "export everything the server keeps about the current user (JSON)",
    "messages:read": "read conversations, messages and message statistics",
    "messages:write": "send, reply to, edit and delete direct messages",
    "messages:react": "add and take back reactions to messages",
    "keys:read": "read users' published public keys (end-to-end encrypted messages)",
    "keys:write": "publish and withdraw the current user's public key",
    "files:read": "list files, read their details, download them, file statistics",
    "files:write": "upload, share, unshare and delete files",
    "groups:read": "list and read groups and their members",
    "groups:write": "create, change, delete, join, leave groups and invite to them",
    "search:read": "search, suggestions, the caller's search analytics",
    "notifications:read": "read notifications, their settings and statistics",
    "notifications:write": "send, broadcast, mark read, archive, delete notifications; "
                           "change notification settings",
    "system:read": "server health, info, metrics, status, version, time, capabilities, "
                   "discovery",
    "realtime:read": "the realtime WebSocket (events, joining rooms), connection figures",
    "realtime:write": "broadcast and send realtime events, typing and presence",
    "webhooks:read": "list webhooks, their events and delivery logs",
    "webhooks:write": "register, change, test and delete webhooks",
    "webhooks:recover": "send deliveries again: one (redeliver) or every failed one since a "
                        "time (recover)",
    "webhooks:secrets": "rotate a webhook's signing secret (the answer holds the new one)",
    "analytics:read": "usage, trends and reports",
    "backup:read": "list backups, their status, download them (administrators)",
    "backup:write": "create, upload, restore and delete backups (administrators)",
    "performance:read": "server metrics, history, alerts and summary",
    "collaboration:read": "list and read collaboration sessions, their content, history and "
                          "statistics",
    "collaboration:write": "create, join, leave and delete collaboration sessions, change "
                           "roles, take and restore snapshots, edit documents live over "
                           "their socket",
    "ai:read": "list AI models and providers, their health, the caller's AI usage",
    "ai:write": "chat with AI models (whole or streamed answers) and run the local "
                "moderation rules",
    "ai:admin": "add, change, test and remove AI providers (administrators)",
}
SCOPE_GROUPS = frozenset(scope.split(":", 1)[0] for scope in SCOPES)


@dataclass(frozen=True)
class Endpoint:
    """One route of the API as the client calls it."""

    name: str  # "<group>.<client method>", e.g. "messages.send"
    method: str
    path: str  # relative to the base URL, "{name}" for path parameters
    scope: str
    auth: bool = True
    cacheable: bool | None = None  # None: GETs are, other methods are not
    idempotent: bool | None = None  # None: by the HTTP method
    # Resource prefixes whose cached answers a successful call makes stale, besides the
    # endpoint's own group; "*" clears the whole cache.
    invalidates: tuple[str, ...] = ()
    # The server does costly work for it (memory-hard digests) and it is not sent twice:
    # it gets ClientConfig.slow_timeout, since giving up early on a busy machine leaves
    # the server acting on a request whose answer nobody reads.
    slow: bool = False
    params: tuple[str, ...] = field(default=(), init=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "params", tuple(re.findall(r"{(\w+)}", self.path)))

    @property
    def group(self) -> str:
        return self.name.split(".", 1)[0]

    @property
    def is_cacheable(self) -> bool:
        return self.method == "GET" if self.cacheable is None else self.cacheable

    @property
    def is_idempotent(self) -> bool:
        return self.method in IDEMPOTENT_METHODS if self.idempotent is None else self.idempotent

    @property
    def is_write(self) -> bool:
        return self.method not in ("GET", "HEAD", "OPTIONS")

    @property
    def stale_prefixes(self) -> tuple[str, ...]:
        """The cached resources a successful call of this endpoint makes stale: a write's
        own group and ``invalidates``; a read's ``invalidates`` (a read that changes
        something, as reading a conversation marks it read)."""
        if not self.is_write:
            return self.invalidates
        return ("/" + self.path.strip("/").split("/", 1)[0], *self.invalidates)

    @property
    def call(self) -> str:
        """``name (METHOD /path)``: how errors name the call."""
        return f"{self.name} ({self.method} {self.path})"


def _e(name: str, method: str, path: str, scope: str | None = None, **kw: object
       ) -> Endpoint:
    if scope is None:
        group = name.split(".", 1)[0]
        scope = f"{group}:{'read' if method == 'GET' else 'write'}"
    return Endpoint(name, method, path, scope, **kw)  # type: ignore[arg-type]


_ENDPOINTS = [
    # discovery
    _e("system.discover", "GET", "/", "system:read", auth=False),
    _e("system.describe", "GET", "/info", "system:read", auth=False),
    # auth
    _e("auth.register", "POST", "/auth/register", auth=False, invalidates=("/system",)),
    _e("auth.login", "POST", "/auth/login", auth=False, invalidates=("*",)),
    _e("auth.refresh", "POST", "/auth/refresh", auth=False),
    _e("auth.logout", "POST", "/auth/logout", invalidates=("*",)),
    _e("auth.me", "GET", "/auth/me"),
    _e("auth.status", "GET", "/auth/status", auth=False),
    # account security: the second login step, 2FA, passwords, sessions (never cached:
    # each answer holds state that changes under the user's hands, or a one-time secret)
    _e("auth.login_2fa", "POST", "/auth/login-2fa", "auth:write", auth=False,
       invalidates=("*",)),
    _e("auth.mfa_status", "GET", "/auth/2fa/status", "auth:mfa", cacheable=False),
    _e("auth.mfa_setup", "POST", "/auth/2fa/setup", "auth:mfa"),
    # Both answer with ten recovery codes, shown once, after one scrypt digest each.
    _e("auth.mfa_verify_setup", "POST", "/auth/2fa/verify-setup", "auth:mfa", slow=True),
    _e("auth.mfa_backup_codes", "POST", "/auth/2fa/backup-codes", "auth:mfa", slow=True),
    _e("auth.mfa_disable", "POST", "/auth/2fa/disable", "auth:mfa"),
    _e("auth.password_policy", "GET", "/auth/password/policy", "auth:password", auth=False),
    _e("auth.change_password", "POST", "/auth/password/change", "auth:password"),
    _e("auth.reset_token", "POST", "/auth/password/reset-token", "auth:password"),
    _e("auth.reset_password", "POST", "/auth/password/reset", "auth:password", auth=False),
    _e("auth.sessions", "GET", "/auth/sessions", "auth:sessions", cacheable=False),
    _e("auth.revoke_others", "POST", "/auth/sessions/revoke-others", "auth:sessions"),
    _e("auth.revoke_session", "DELETE", "/auth/sessions/{session_id}", "auth:sessions"),
    _e("users.security_log", "GET", "/users/me/security-log", "auth:sessions",
       cacheable=False),
    _e("users.export", "GET", "/users/me/export", "users:export", cacheable=False),
    # users
    _e("users.me", "GET", "/users/me"),
    _e("users.update_me", "PUT", "/users/me", invalidates=("/auth/me",)),
    _e("users.delete_me", "DELETE", "/users/me", "users:delete", invalidates=("*",)),
    _e("users.search", "GET", "/users/search"),
    _e("users.stats", "GET", "/users/stats/summary"),
    _e("users.list", "GET", "/users/"),
    _e("users.get", "GET", "/users/{user_id}"),
    # public keys for end-to-end encryption; a key must be current: never from the cache
    _e("keys.publish", "PUT", "/users/me/keys"),
    _e("keys.get", "GET", "/users/{user_id}/keys", cacheable=False),
    _e("keys.withdraw", "DELETE", "/users/me/keys"),
    # messages
    _e("messages.send", "POST", "/messages/send", invalidates=("/search",)),
    _e("messages.conversations", "GET", "/messages/conversations"),
    # Reading a conversation marks its messages read: never answered from the cache, and
    # the cached unread counts are stale after it.
    _e("messages.conversation", "GET", "/messages/conversation/{other_user_id}",
       cacheable=False, invalidates=("/messages/conversations", "/messages/stats")),
    _e("messages.stats", "GET", "/messages/stats"),
    _e("messages.get", "GET", "/messages/{message_id}"),
    _e("messages.delete", "DELETE", "/messages/{message_id}", invalidates=("/search",)),
    _e("messages.edit", "PATCH", "/messages/{message_id}", invalidates=("/search",)),
    # Threads grow and counts change under the reader: never from the cache.
    _e("messages.thread", "GET", "/messages/{message_id}/thread", cacheable=False),
    _e("messages.react", "POST", "/messages/{message_id}/reactions", "messages:react",
       idempotent=True),
    _e("messages.unreact", "DELETE", "/messages/{message_id}/reactions", "messages:react"),
    # files
    _e("files.upload", "POST", "/files/upload", invalidates=("/search",)),
    _e("files.stats", "GET", "/files/stats"),
    _e("files.list", "GET", "/files/"),
    _e("files.info", "GET", "/files/{file_id}/info"),
    # Downloads are counted by the server and may be large: not cached.
    _e("files.download", "GET", "/files/{file_id}/download", cacheable=False),
    _e("files.share", "POST", "/files/{file_id}/share", idempotent=True),
    _e("files.unshare", "DELETE", "/files/{file_id}/share/{user_id}"),
    _e("files.delete", "DELETE", "/files/{file_id}", invalidates=("/search",)),
    # groups
    _e("groups.create", "POST", "/groups/create", invalidates=("/search",)),
    _e("groups.list", "GET", "/groups/"),
    _e("groups.stats", "GET", "/groups/stats"),
    _e("groups.mine", "GET", "/groups/my/groups"),
    _e("groups.get", "GET", "/groups/{group_id}"),
    _e("groups.update", "PUT", "/groups/{group_id}", invalidates=("/search",)),
    _e("groups.delete", "DELETE", "/groups/{group_id}", invalidates=("/search",)),
    _e("groups.join", "POST", "/groups/{group_id}/join"),
    _e("groups.leave", "POST", "/groups/{group_id}/leave"),
    _e("groups.invite", "POST", "/groups/{group_id}/invite"),
    _e("groups.members", "GET", "/groups/{group_id}/members"),
    # search (a POST that only reads)
    _e("search.search", "POST", "/search/", "search:read", cacheable=False, idempotent=True),
    _e("search.suggestions", "GET", "/search/suggestions"),
    _e("search.overview", "GET", "/search/analytics/overview"),
    _e("search.trends", "GET", "/search/analytics/trends"),
    _e("search.status", "GET", "/search/status"),
    # notifications
    _e("notifications.send", "POST", "/notifications/send"),
    _e("notifications.broadcast", "POST", "/notifications/broadcast"),
    _e("notifications.list", "GET", "/notifications/"),
    _e("notifications.unread_count", "GET", "/notifications/unread/count"),
    _e("notifications.settings", "GET", "/notifications/settings"),
    _e("notifications.update_settings", "PUT", "/notifications/settings"),
    _e("notifications.stats", "GET", "/notifications/stats"),
    _e("notifications.system_status", "GET", "/notifications/system/status"),
    _e("notifications.mark_all_read", "POST", "/notifications/mark-all-read",
       idempotent=True),
    _e("notifications.test", "POST", "/notifications/test"),
    _e("notifications.get", "GET", "/notifications/{notification_id}"),
    _e("notifications.update", "PUT", "/notifications/{notification_id}"),
    _e("notifications.delete", "DELETE", "/notifications/{notification_id}"),
    # system (no auth); live figures are never cached
    _e("system.health", "GET", "/system/health", auth=False, cacheable=False),
    _e("system.info", "GET", "/system/info", auth=False),
    _e("system.metrics", "GET", "/system/metrics", auth=False, cacheable=False),
    _e("system.status", "GET", "/system/status", auth=False, cacheable=False),
    _e("system.version", "GET", "/system/version", auth=False),
    _e("system.ping", "GET", "/system/ping", auth=False, cacheable=False),
    _e("system.time", "GET", "/system/time", auth=False, cacheable=False),
    _e("system.capabilities", "GET", "/system/capabilities", auth=False),
    _e("system.stats", "GET", "/system/stats/summary", auth=False, cacheable=False),
    # realtime
    _e("realtime.subscribe", "WEBSOCKET", "/realtime/ws", "realtime:read",
       cacheable=False, idempotent=False),
    # Frames sent over the socket that act on others (typing, presence): a scope of their own.
    _e("realtime.typing", "WEBSOCKET", "/realtime/ws", "realtime:write", cacheable=False,
       idempotent=False),
    _e("realtime.presence", "WEBSOCKET", "/realtime/ws", "realtime:write", cacheable=False,
       idempotent=False),
    _e("realtime.connections", "GET", "/realtime/connections", cacheable=False),
    _e("realtime.status", "GET", "/realtime/status", auth=False, cacheable=False),
    _e("realtime.broadcast", "POST", "/realtime/broadcast"),
    _e("realtime.send", "POST", "/realtime/send/{user_id}"),
    # webhooks
    _e("webhooks.register", "POST", "/webhooks/register"),
    _e("webhooks.events", "GET", "/webhooks/events"),
    _e("webhooks.list", "GET", "/webhooks/"),
    _e("webhooks.delivery", "GET", "/webhooks/deliveries/{delivery_id}", cacheable=False),
    _e("webhooks.get", "GET", "/webhooks/{webhook_id}"),
    _e("webhooks.update", "PUT", "/webhooks/{webhook_id}"),
    _e("webhooks.delete", "DELETE", "/webhooks/{webhook_id}"),
    _e("webhooks.test", "POST", "/webhooks/{webhook_id}/test"),
    _e("webhooks.deliveries", "GET", "/webhooks/{webhook_id}/deliveries", cacheable=False),
    _e("webhooks.all_deliveries", "GET", "/webhooks/deliveries", cacheable=False),
    # Not idempotent: a retried POST would send the delivery twice.
    _e("webhooks.redeliver", "POST", "/webhooks/deliveries/{delivery_id}/redeliver",
       "webhooks:recover"),
    _e("webhooks.recover", "POST", "/webhooks/{webhook_id}/recover", "webhooks:recover"),
    _e("webhooks.rotate_secret", "POST", "/webhooks/{webhook_id}/rotate-secret",
       "webhooks:secrets"),
    # analytics
    _e("analytics.usage", "GET", "/analytics/usage"),
    _e("analytics.trends", "GET", "/analytics/trends"),
    _e("analytics.reports", "GET", "/analytics/reports"),
    _e("analytics.report", "GET", "/analytics/reports/{report_type}"),
    # backup (administrators); status changes while a backup is made: not cached
    _e("backup.create", "POST", "/backup/create"),
    _e("backup.list", "GET", "/backup/", cacheable=False),
    _e("backup.upload", "POST", "/backup/upload"),
    _e("backup.status", "GET", "/backup/{backup_id}/status", cacheable=False),
    _e("backup.get", "GET", "/backup/{backup_id}", cacheable=False),
    _e("backup.download", "GET", "/backup/{backup_id}/download", cacheable=False),
    _e("backup.restore", "POST", "/backup/{backup_id}/restore", invalidates=("*",)),
    _e("backup.delete", "DELETE", "/backup/{backup_id}"),
    # collaboration: sessions change under the reader (content, who is online): not cached
    _e("collaboration.create", "POST", "/collaboration/sessions"),
    _e("collaboration.list", "GET", "/collaboration/sessions", cacheable=False),
    _e("collaboration.stats", "GET", "/collaboration/stats", cacheable=False),
    _e("collaboration.get", "GET", "/collaboration/sessions/{session_id}", cacheable=False),
    _e("collaboration.delete", "DELETE", "/collaboration/sessions/{session_id}"),
    _e("collaboration.join", "POST", "/collaboration/sessions/{session_id}/join",
       idempotent=True),
    _e("collaboration.leave", "POST", "/collaboration/sessions/{session_id}/leave",
       idempotent=True),
    _e("collaboration.set_role", "PUT",
       "/collaboration/sessions/{session_id}/members/{user_id}"),
    _e("collaboration.session_stats", "GET", "/collaboration/sessions/{session_id}/stats",
       cacheable=False),
    _e("collaboration.content", "GET", "/collaboration/sessions/{session_id}/content",
       cacheable=False),
    # A ticket opens the socket that edits: the write scope, like the socket itself.
    _e("collaboration.ticket", "POST", "/collaboration/sessions/{session_id}/ticket",
       "collaboration:write"),
    _e("collaboration.history", "GET", "/collaboration/sessions/{session_id}/history",
       cacheable=False),
    _e("collaboration.snapshot", "POST", "/collaboration/sessions/{session_id}/history"),
    _e("collaboration.get_snapshot", "GET",
       "/collaboration/sessions/{session_id}/history/{snapshot_id}"),
    _e("collaboration.restore", "POST",
       "/collaboration/sessions/{session_id}/history/{snapshot_id}/restore"),
    _e("collaboration.open", "WEBSOCKET", "/collaboration/ws/{session_id}",
       "collaboration:write", cacheable=False, idempotent=False),
    # performance: live figures
    _e("performance.metrics", "GET", "/performance/metrics", cacheable=False),
    _e("performance.history", "GET", "/performance/history", cacheable=False),
    _e("performance.alerts", "GET", "/performance/alerts", cacheable=False),
    _e("performance.summary", "GET", "/performance/summary", cacheable=False),
    # ai: answers are never cached (models and health are asked of providers live);
    # chat is not idempotent (a retried POST would be a second, billed request)
    _e("ai.chat", "POST", "/ai/chat"),
    _e("ai.request", "POST", "/ai/request"),
    _e("ai.models", "GET", "/ai/models", cacheable=False),
    _e("ai.providers", "GET", "/ai/providers", cacheable=False),
    _e("ai.configure_provider", "PUT", "/ai/providers/{name}", "ai:admin"),
    _e("ai.delete_provider", "DELETE", "/ai/providers/{name}", "ai:admin"),
    _e("ai.test_provider", "POST", "/ai/providers/{name}/test", "ai:admin"),
    _e("ai.health", "GET", "/ai/health", cacheable=False),
    _e("ai.usage", "GET", "/ai/usage", cacheable=False),
    _e("ai.moderate", "POST", "/ai/moderate", idempotent=True),
]

ENDPOINTS: dict[str, Endpoint] = {e.name: e for e in _ENDPOINTS}
assert len(ENDPOINTS) == len(_ENDPOINTS), "duplicate endpoint names"
assert all(e.scope in SCOPES for e in _ENDPOINTS), "an endpoint has an unknown scope"


def route_key(method: str, path: str) -> tuple[str, str]:
    """A route's identity independent of parameter names: ``("GET", "/users/{}")``."""
    return method.upper(), re.sub(r"{[^}]*}", "{}", "/" + path.lstrip("/"))


def scope_matches(granted: str, needed: str) -> bool:
    """Whether the declared scope ``granted`` covers ``needed`` (wildcards included)."""
    if granted in ("*", needed):
        return True
    group, _, access = granted.partition(":")
    return access == "*" and needed.split(":", 1)[0] == group


def unknown_scopes(declared: list[str]) -> list[str]:
    """The declared scopes that name nothing the API has."""
    out = []
    for scope in declared:
        group, _, access = scope.partition(":")
        if scope == "*" or scope in SCOPES or (access == "*" and group in SCOPE_GROUPS):
            continue
        out.append(scope)
    return out


def endpoint_named(name: str) -> Endpoint:
    """The endpoint called ``name`` ("<group>.<method>", see :data:`ENDPOINTS`); a
    ``KeyError`` naming the close ones for a name the client does not know."""
    try:
        return ENDPOINTS[name]
    except KeyError:
        import difflib

        near = difflib.get_close_matches(name, ENDPOINTS, n=3, cutoff=0.6)
        group = name.split(".", 1)[0]
        near = near or sorted(n for n in ENDPOINTS if n.startswith(group + "."))[:6]
        hint = f"; did you mean {', '.join(near)}?" if near else ""
        raise KeyError(f"unknown endpoint {name!r} (the names are in "
                       f"api_integration_layer.endpoints.ENDPOINTS){hint}") from None
