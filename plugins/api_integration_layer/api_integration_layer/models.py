"""Typed request bodies and responses of the PlexiChat v1 API (docs/api-v1.md).

Responses accept fields they do not know (``extra="allow"``, readable as attributes), so a
newer server does not break the client; request bodies refuse unknown fields, like the
server does. Times are parsed into aware ``datetime`` objects.
"""

from __future__ import annotations

import datetime as dt
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

MessageType = Literal["text", "markdown", "code"]
GroupType = Literal["group", "channel", "private"]
SearchType = Literal["all", "messages", "users", "files", "groups"]
NotificationType = Literal["info", "success", "warning", "error", "message", "mention",
                           "system", "update", "group_invite"]
# What a user may send: "system" and "group_invite" are the server's own (422 if sent).
SentNotificationType = Literal["info", "success", "warning", "error", "message", "mention",
                               "update"]
Priority = Literal["low", "normal", "high", "urgent"]
Presence = Literal["online", "away", "busy", "offline"]


# defer_build: each model's validator is made when it is first used, not when the plugin
# is imported (building all ~160 at import was ~0.1 s of every app start).
class Response(BaseModel):
    """Base of every answer: unknown fields are kept and readable as attributes."""

    model_config = ConfigDict(extra="allow", defer_build=True)


class Request(BaseModel):
    """Base of request bodies: unknown fields are an error, as on the server."""

    model_config = ConfigDict(extra="forbid", defer_build=True)


class Page(Response):
    """The common part of every list answer."""

    total: int
    limit: int
    offset: int
    has_more: bool


class ActionResult(Response):
    """``{success, message, ...details}`` of deletes, joins, logout and similar."""

    success: bool = True
    message: str = ""


# -- auth ------------------------------------------------------------------------------
class RegisterRequest(Request):
    username: str
    email: str
    password: str
    display_name: str | None = None
    first_name: str | None = None
    last_name: str | None = None
    invite_code: str | None = None
    terms_accepted: bool = True


class LoginRequest(Request):
    username: str
    password: str
    remember_me: bool = False
    device_info: dict[str, Any] = Field(default_factory=dict)
    mfa_code: str | None = None


class RefreshRequest(Request):
    refresh_token: str


class TokenResponse(Response):
    access_token: str
    refresh_token: str
    token_type: str = "bearer"
    expires_in: float
    expires_at: dt.datetime | None = None
    refresh_expires_in: float | None = None
    refresh_expires_at: dt.datetime | None = None
    user_id: str
    username: str
    requires_mfa: bool = False
    session_id: str | None = None
    permissions: list[str] = Field(default_factory=list)
    remember_me: bool = True


class PresenceInfo(Response):
    status: str = "offline"
    last_seen: dt.datetime | None = None


class UserProfile(Response):
    id: str
    username: str
    email: str | None = None
    display_name: str | None = None
    first_name: str | None = None
    last_name: str | None = None
    created_at: dt.datetime | None = None
    updated_at: dt.datetime | None = None
    last_login: dt.datetime | None = None
    is_active: bool = True
    is_admin: bool = False
    is_online: bool = False
    presence: PresenceInfo | None = None


class RegisterResult(Response):
    success: bool = True
    message: str = ""
    user_id: str
    username: str
    user: UserProfile | None = None


class AuthStatus(Response):
    service: str
    status: str
    total_users: int
    active_sessions: int
    timestamp: dt.datetime


# -- account security --------------------------------------------------------------------
class Login2faRequest(Request):
    mfa_token: str
    code: str | None = None
    recovery_code: str | None = None


class MfaChallengeInfo(Response):
    """The answer of a correct password for an account with 2FA: no tokens yet."""

    requires_mfa: Literal[True] = True
    mfa_token: str
    mfa_expires_in: float = 300
    mfa_expires_at: dt.datetime | None = None
    methods: list[str] = Field(default_factory=lambda: ["totp", "recovery_code"])
    user_id: str
    username: str


class MfaStatus(Response):
    enabled: bool
    pending_setup: bool = False
    enabled_at: dt.datetime | None = None
    method: str | None = None
    digits: int = 6
    period: int = 30
    recovery_codes_remaining: int = 0
    recovery_codes_total: int = 0
    low_recovery_codes: bool = False


class MfaSetup(Response):
    """A new TOTP key (shown once): the key, its otpauth:// URI and the QR code as SVG."""

    secret: str
    secret_grouped: str | None = None
    otpauth_uri: str
    qr_svg: str
    issuer: str = "PlexiChat"
    account: str | None = None
    digits: int = 6
    period: int = 30


class RecoveryCodes(ActionResult):
    recovery_codes: list[str]


class PasswordPolicy(Response):
    min_length: int
    max_length: int = 256
    require_upper: bool = True
    require_lower: bool = True
    require_digit: bool = True
    require_special: bool = True
    description: str = ""


class SessionsEnded(ActionResult):
    sessions_ended: int = 0


class ResetToken(ActionResult):
    reset_token: str
    user_id: str
    username: str
    expires_at: dt.datetime
    expires_in: float


class SessionInfo(Response):
    id: str
    current: bool = False
    created_at: dt.datetime | None = None
    last_used_at: dt.datetime | None = None
    expires_at: dt.datetime | None = None
    remember_me: bool = False
    device: dict[str, Any] = Field(default_factory=dict)
    device_label: str = ""
    user_agent: str | None = None
    connected: bool = False


class SessionList(Page):
    sessions: list[SessionInfo]
    current_session_id: str | None = None


class SecurityEvent(Response):
    id: str
    kind: str
    at: dt.datetime
    session_id: str | None = None
    user_agent: str | None = None
    device: dict[str, Any] = Field(default_factory=dict)
    device_label: str = ""
    detail: dict[str, Any] = Field(default_factory=dict)


class SecurityLog(Page):
    events: list[SecurityEvent]
    kinds: list[str] = Field(default_factory=list)


# -- users -----------------------------------------------------------------------------
class ProfileUpdate(Request):
    display_name: str | None = None
    email: str | None = None
    first_name: str | None = None
    last_name: str | None = None


class UserBrief(Response):
    id: str
    username: str
    display_name: str | None = None
    created_at: dt.datetime | None = None
    is_active: bool = True
    is_online: bool = False


class UserList(Page):
    users: list[UserBrief]
    query: str | None = None


class UserStats(Response):
    total_users: int
    active_users: int
    online_users: int = 0
    timestamp: dt.datetime | None = None


class AccountDeleted(ActionResult):
    user_id: str
    files_deleted: int = 0


# -- messages --------------------------------------------------------------------------
class SendMessage(Request):
    recipient_id: str | None = None  # may be left out of a reply (the other party)
    content: str
    message_type: MessageType = "text"
    encrypted: bool = False
    reply_to: str | None = None
    # The sender's key of the message: a retry with it answers the stored message.
    client_message_id: str | None = Field(None, min_length=1, max_length=64,
                                          pattern=r"^[A-Za-z0-9_-]+$")


class EditMessage(Request):
    content: str


class Reaction(Request):
    emoji: str


class ReactionCount(Response):
    emoji: str
    count: int
    me: bool = False  # whether the caller is one of them


class Message(Response):
    id: str
    sender_id: str
    recipient_id: str
    content: str
    message_type: str = "text"
    encrypted: bool = False
    timestamp: dt.datetime
    read: bool = False
    read_at: dt.datetime | None = None
    reply_to: str | None = None
    thread_id: str | None = None  # the first message of the thread, for a reply
    reply_count: int = 0
    edited: bool = False
    edited_at: dt.datetime | None = None
    reactions: list[ReactionCount] = []
    client_message_id: str | None = None  # the sender's key, shown to the sender only


class SentMessage(Message):
    """The answer of a send: ``duplicate`` when a message sent before with the same
    ``client_message_id`` was answered instead of storing a new one (``deleted``: that
    message was deleted since)."""

    duplicate: bool = False
    deleted: bool = False


class ReactionResult(Message):
    changed: bool  # False: the reaction was already there (or already gone)


class Thread(Page):
    thread_id: str
    root: Message | None  # None once the first message is deleted
    messages: list[Message]


class ConversationSummary(Response):
    user_id: str
    username: str
    display_name: str | None = None
    last_message: str | None = None
    last_message_time: dt.datetime | None = None
    unread_count: int = 0
    is_online: bool = False


class ConversationList(Page):
    conversations: list[ConversationSummary]


class OtherUser(Response):
    id: str
    username: str
    display_name: str | None = None


class Conversation(Page):
    messages: list[Message]
    other_user: OtherUser


class MessageStats(Response):
    sent_messages: int
    received_messages: int
    unread_messages: int
    total_messages: int
    conversations: int = 0


# -- files -----------------------------------------------------------------------------
class FileShare(Response):
    user_id: str
    username: str | None = None
    permission: str = "read"
    shared_at: dt.datetime | None = None


class FileInfo(Response):
    id: str
    filename: str
    content_type: str | None = None
    file_type: str | None = None
    size: int
    sha256: str | None = None
    uploaded_by: str | None = None
    uploaded_at: dt.datetime | None = None
    description: str | None = None
    is_public: bool = False
    download_count: int = 0
    is_owner: bool = False
    shared_with: list[FileShare] | None = None


class FileList(Page):
    files: list[FileInfo]


class FileStats(Response):
    total_files: int
    total_size_bytes: int
    total_downloads: int
    file_types: dict[str, int] = Field(default_factory=dict)
    public_files: int = 0
    shared_files: int = 0
    shared_with_me: int = 0


class ShareRequest(Request):
    user_id: str
    permission: Literal["read"] = "read"


class Download(Response):
    """A downloaded file (or backup archive) held in memory."""

    filename: str | None
    content_type: str | None
    content: bytes
    sha256: str


# -- groups ----------------------------------------------------------------------------
class CreateGroup(Request):
    name: str
    description: str | None = None
    type: GroupType = "group"
    is_public: bool | None = None
    max_members: int = 100


class GroupUpdate(Request):
    name: str | None = None
    description: str | None = None
    is_public: bool | None = None
    max_members: int | None = None


class InviteRequest(Request):
    user_ids: list[str]
    message: str | None = None


class Group(Response):
    id: str
    name: str
    description: str | None = None
    type: str = "group"
    is_public: bool = True
    max_members: int = 100
    owner_id: str | None = None
    member_count: int = 0
    created_at: dt.datetime | None = None
    updated_at: dt.datetime | None = None
    is_member: bool = False
    role: str | None = None
    invited: bool = False


class GroupList(Page):
    groups: list[Group]


class GroupStats(Response):
    total_groups: int
    public_groups: int
    my_groups: int
    owned_groups: int
    pending_invites: int = 0
    by_type: dict[str, int] = Field(default_factory=dict)


class JoinResult(ActionResult):
    group: Group


class InviteResult(ActionResult):
    group_id: str
    invited_users: list[str] = Field(default_factory=list)
    already_members: list[str] = Field(default_factory=list)
    total_invited: int = 0


class Member(Response):
    user_id: str
    username: str
    display_name: str | None = None
    role: str | None = None
    joined_at: dt.datetime | None = None
    is_online: bool = False


class MemberList(Page):
    members: list[Member]
    group_id: str


# -- search ----------------------------------------------------------------------------
class SearchFilters(Request):
    since: dt.datetime | None = None
    until: dt.datetime | None = None
    user_id: str | None = None
    file_type: str | None = None


class SearchRequest(Request):
    query: str
    type: SearchType = "all"
    filters: SearchFilters = Field(default_factory=SearchFilters)
    sort_by: Literal["relevance", "date"] = "relevance"
    limit: int = 20
    offset: int = 0


class SearchHit(Response):
    id: str
    type: str
    title: str | None = None
    content: str | None = None
    score: float = 0.0
    metadata: dict[str, Any] = Field(default_factory=dict)
    created_at: dt.datetime | None = None


class SearchResults(Page):
    results: list[SearchHit]
    query: str
    type: str


class Suggestion(Response):
    type: str
    text: str
    description: str | None = None


class Suggestions(Response):
    suggestions: list[Suggestion]
    query: str


class SearchOverview(Response):
    user_id: str
    messages_sent: int
    files_uploaded: int
    total_file_size: int = 0
    searches: int = 0
    recent_activity: dict[str, Any] = Field(default_factory=dict)
    generated_at: dt.datetime | None = None


class DailyCount(Response):
    date: str
    count: int


class SearchTrends(Response):
    user_id: str
    days: int
    series: dict[str, list[DailyCount]]
    generated_at: dt.datetime | None = None


class ServiceStatus(Response):
    service: str
    status: str
    timestamp: dt.datetime | None = None


# -- notifications ---------------------------------------------------------------------
class SendNotification(Request):
    title: str
    message: str
    recipient_id: str
    type: SentNotificationType = "info"
    priority: Priority = "normal"
    action_url: str | None = None
    metadata: dict[str, Any] = Field(default_factory=dict)


class BroadcastNotification(Request):
    title: str
    message: str
    recipient_ids: list[str]
    type: SentNotificationType = "info"
    priority: Priority = "normal"
    action_url: str | None = None
    metadata: dict[str, Any] = Field(default_factory=dict)


class NotificationChange(Request):
    read: bool | None = None
    archived: bool | None = None


class Notification(Response):
    id: str
    user_id: str
    sender_id: str | None = None
    title: str
    message: str
    type: str = "info"
    priority: str = "normal"
    action_url: str | None = None
    metadata: dict[str, Any] = Field(default_factory=dict)
    read: bool = False
    read_at: dt.datetime | None = None
    archived: bool = False
    created_at: dt.datetime | None = None


class NotificationList(Page):
    notifications: list[Notification]
    unread_count: int = 0


class BroadcastResult(ActionResult):
    sent_count: int
    notification_ids: list[str]
    notifications: list[Notification] = Field(default_factory=list)


class UnreadCount(Response):
    unread_count: int
    user_id: str | None = None


class NotificationTypes(Request):
    messages: bool = True
    mentions: bool = True
    system: bool = True
    updates: bool = True


class QuietHours(Request):
    start: str
    end: str


class NotificationSettingsUpdate(Request):
    email_notifications: bool | None = None
    push_notifications: bool | None = None
    desktop_notifications: bool | None = None
    sound_enabled: bool | None = None
    notification_types: NotificationTypes | None = None
    quiet_hours: QuietHours | None = None


class NotificationSettings(Response):
    user_id: str | None = None
    email_notifications: bool = True
    push_notifications: bool = True
    desktop_notifications: bool = True
    sound_enabled: bool = True
    notification_types: dict[str, bool] = Field(default_factory=dict)
    quiet_hours: dict[str, str] | None = None


class NotificationStats(Response):
    total: int
    unread: int
    archived: int
    by_type: dict[str, int] = Field(default_factory=dict)
    by_priority: dict[str, int] = Field(default_factory=dict)


# -- system ----------------------------------------------------------------------------
class Health(Response):
    status: str
    timestamp: dt.datetime | None = None
    uptime: float | None = None
    version: str | None = None
    checks: dict[str, Any] = Field(default_factory=dict)


class SystemInfo(Response):
    platform: str | None = None
    python_version: str | None = None
    cpu_count: int | None = None
    memory_total: int | None = None
    disk_total: int | None = None
    version: str | None = None


class SystemMetrics(Response):
    timestamp: Any = None
    cpu_percent: float | None = None
    memory_percent: float | None = None
    disk_percent: float | None = None
    network_sent: int | None = None
    network_recv: int | None = None


class SystemStatus(Response):
    status: str
    service: str | None = None
    version: str | None = None
    uptime: float | None = None
    counts: dict[str, Any] = Field(default_factory=dict)


class Version(Response):
    version: str
    api_version: str
    build_date: str | None = None
    environment: str | None = None
    features: Any = None


class Ping(Response):
    message: str
    status: str
    timestamp: dt.datetime | None = None


class ServerTime(Response):
    timestamp: dt.datetime
    unix: float
    timezone: str | None = None
    utc_offset_seconds: int = 0


class Capabilities(Response):
    features: Any = None


class StatsSummary(Response):
    users: int
    sessions: int
    messages: int
    files: int
    total_file_size: int = 0
    groups: int = 0
    uptime: float | None = None


# -- realtime --------------------------------------------------------------------------
class RealtimeEventRequest(Request):
    type: str
    data: dict[str, Any] = Field(default_factory=dict)
    room_id: str | None = None


class RealtimeDelivery(ActionResult):
    delivered: int = 0
    online: bool | None = None


class Connections(Response):
    total_connections: int
    active_users: int
    active_rooms: int
    user_connections: int
    rooms: list[str] = Field(default_factory=list)


class RealtimeStatus(Response):
    service: str
    status: str
    websocket: str | None = None
    total_connections: int = 0
    active_users: int = 0
    active_rooms: int = 0


class RealtimeEvent(Response):
    """A frame from the realtime socket: ``{type, data, timestamp}``."""

    type: str
    data: dict[str, Any] = Field(default_factory=dict)
    timestamp: dt.datetime | None = None


# -- webhooks --------------------------------------------------------------------------
class RegisterWebhook(Request):
    url: str
    events: list[str]
    secret: str | None = None
    description: str | None = None
    active: bool = True
    disable_after: int | None = None  # consecutive failed deliveries; 0 = never


class WebhookUpdate(Request):
    url: str | None = None
    events: list[str] | None = None
    description: str | None = None
    active: bool | None = None
    disable_after: int | None = None


class Webhook(Response):
    id: str
    url: str
    events: list[str]
    description: str | None = None
    active: bool = True
    owner_id: str | None = None
    created_at: dt.datetime | None = None
    secret: str | None = None  # only in the answer to register
    secret_hint: str | None = None
    signature_header: str | None = None
    timestamp_header: str | None = None
    deliveries_total: int = 0
    deliveries_delivered: int = 0
    deliveries_failed: int = 0
    deliveries_pending: int = 0
    warnings: list[str] | None = None
    disable_after: int = 0
    consecutive_failures: int = 0
    disabled_reason: str | None = None
    disabled_at: dt.datetime | None = None
    previous_secret_expires_at: dt.datetime | None = None  # while a rotation's grace lasts


class WebhookList(Page):
    webhooks: list[Webhook]


class WebhookEvents(Response):
    events: list[str]
    admin_only: list[str] = Field(default_factory=list)
    wildcard: str = "*"


class DeliveryAttempt(Response):
    attempt: int
    at: dt.datetime | None = None
    status_code: int | None = None
    error: str | None = None
    duration_ms: float | None = None
    response: str | None = None
    request_headers: dict[str, str] = Field(default_factory=dict)


class Delivery(Response):
    id: str
    webhook_id: str
    event: str
    status: str
    attempt_count: int = 0
    response_status: int | None = None
    error: str | None = None
    next_attempt_at: dt.datetime | None = None
    created_at: dt.datetime | None = None
    updated_at: dt.datetime | None = None
    payload: dict[str, Any] = Field(default_factory=dict)
    attempts: list[DeliveryAttempt] = Field(default_factory=list)
    redelivery_of: str | None = None


class DeliveryList(Page):
    deliveries: list[Delivery]
    webhook_id: str


class DeliveryLog(Page):
    """The delivery log across the caller's webhooks."""

    deliveries: list[Delivery]


class RecoverResult(Response):
    webhook_id: str
    since: dt.datetime
    until: dt.datetime
    recovered: int
    delivery_ids: list[str] = Field(default_factory=list)
    recovered_from: list[str] = Field(default_factory=list)
    remaining: int = 0


# -- analytics -------------------------------------------------------------------------
class Usage(Response):
    period_days: int
    since: dt.datetime | None = None
    generated_at: dt.datetime | None = None
    users: dict[str, Any] = Field(default_factory=dict)
    messages: dict[str, Any] = Field(default_factory=dict)
    files: dict[str, Any] = Field(default_factory=dict)
    groups: dict[str, Any] = Field(default_factory=dict)
    notifications: dict[str, Any] = Field(default_factory=dict)
    logins: dict[str, Any] = Field(default_factory=dict)
    searches: dict[str, Any] = Field(default_factory=dict)
    webhooks: dict[str, Any] = Field(default_factory=dict)
    me: dict[str, Any] = Field(default_factory=dict)
    #: With ``compare=True``: the period figures of the ``period_days`` before ``since``.
    previous: dict[str, Any] | None = None


class Trends(Response):
    days: int
    metrics: list[str]
    series: dict[str, list[DailyCount]]
    summary: dict[str, dict[str, Any]] = Field(default_factory=dict)
    generated_at: dt.datetime | None = None


class ReportInfo(Response):
    type: str
    description: str = ""
    admin_only: bool = False
    formats: list[str] = Field(default_factory=list)


class ReportList(Response):
    reports: list[ReportInfo]


class Report(Response):
    type: str
    title: str | None = None
    period_days: int | None = None
    columns: list[str] = Field(default_factory=list)
    rows: list[Any] = Field(default_factory=list)
    summary: dict[str, Any] = Field(default_factory=dict)


# -- backup ----------------------------------------------------------------------------
class Backup(Response):
    id: str
    name: str | None = None
    status: str
    source: str | None = None
    created_by: str | None = None
    created_at: dt.datetime | None = None
    completed_at: dt.datetime | None = None
    size: int | None = None
    checksum: str | None = None
    checksum_algorithm: str | None = None
    counts: dict[str, Any] | None = None
    error: str | None = None
    download_url: str | None = None


class BackupList(Page):
    backups: list[Backup]
    max_backups: int | None = None  # finished backups kept; a new one deletes the oldest


class RestoreResult(ActionResult):
    backup_id: str
    checksum: str | None = None
    checksum_verified: bool = False
    counts: dict[str, Any] = Field(default_factory=dict)


# -- performance -----------------------------------------------------------------------
class PerformanceMetrics(Response):
    timestamp: Any = None
    cpu_percent: float | None = None
    memory_percent: float | None = None
    disk_percent: float | None = None
    api: dict[str, Any] = Field(default_factory=dict)


class PerformanceHistory(Page):
    samples: list[dict[str, Any]]
    interval_seconds: float | None = None


class PerformanceAlerts(Page):
    alerts: list[dict[str, Any]]
    active_count: int = 0
    thresholds: dict[str, Any] = Field(default_factory=dict)


class PerformanceSummary(Response):
    pass


class PublicKey(Response):
    algorithm: str
    public_key: str
    updated_at: dt.datetime | None = None


class PublishedKey(PublicKey):
    user_id: str


class UserKeys(Response):
    user_id: str
    keys: list[PublicKey]


# -- discovery -------------------------------------------------------------------------
class RouteInfo(Response):
    method: str
    path: str
    group: str = ""
    name: str = ""
    auth: bool = True


class ServerDescription(Response):
    """``GET /api/v1/``: what the server is and every route it serves."""

    name: str
    version: str | None = None
    api_version: str | None = None
    status: str | None = None
    server: str | None = None
    base_path: str = "/api/v1"
    endpoints: dict[str, str] = Field(default_factory=dict)
    websocket: str | None = None
    routes: list[RouteInfo] = Field(default_factory=list)
    auth: dict[str, Any] = Field(default_factory=dict)
    documentation: str | None = None


# -- collaboration -----------------------------------------------------------------------
CollaborationType = Literal["document", "code", "whiteboard", "presentation", "screen_share"]
CollaborationRole = Literal["owner", "editor", "viewer"]
JoinRole = Literal["editor", "viewer"]


class CreateCollaboration(Request):
    title: str
    collaboration_type: CollaborationType = "document"
    initial_content: str = ""
    max_users: int = 50
    join_role: JoinRole = "editor"


class JoinCollaboration(Request):
    role: CollaborationRole = "editor"


class MemberRole(Request):
    role: JoinRole


class SnapshotRequest(Request):
    label: str = ""


class CollaborationMember(Response):
    user_id: str
    username: str
    role: str
    joined_at: dt.datetime | None = None
    online: bool = False


class CollaborationSession(Response):
    session_id: str
    title: str
    collaboration_type: str
    owner_id: str
    created_at: dt.datetime
    last_modified: dt.datetime
    version: int
    max_users: int
    join_role: str = "editor"
    my_role: str
    is_active: bool = False
    connected_users: int = 0
    member_count: int | None = None
    users: list[CollaborationMember] = []  # on get, create and join only
    content: str | None = None  # on get and create only
    joined: str | None = None  # on join: joined, rejoined or changed


class CollaborationSessionList(Page):
    sessions: list[CollaborationSession]


class CollaborationStats(Response):
    sessions: int
    owned: int
    editing: int
    viewing: int
    live_sessions: int = 0
    connected_sockets: int = 0
    all_sessions: int | None = None  # administrators only
    all_snapshots: int | None = None


class CollaborationSessionStats(Response):
    session_id: str
    version: int
    members: int
    max_users: int
    connected_sockets: int
    connected_users: int
    viewers_connected: int
    document_bytes: int
    content_length: int
    stored_updates: int
    snapshots: int
    updates_applied: int
    updates_dropped: int
    awareness_relayed: int = 0
    limits: dict[str, float] = {}


class CollaborationContent(Response):
    session_id: str
    format: str
    content: str
    version: int
    last_modified: dt.datetime | None = None


class CollaborationTicket(Response):
    ticket: str
    expires_in: float
    role: str
    ws_path: str
    session_id: str


class Snapshot(Response):
    snapshot_id: str
    session_id: str
    label: str
    version: int
    length: int
    created_by: str | None = None
    created_at: dt.datetime
    content: str | None = None  # on get and take only


class SnapshotList(Page):
    snapshots: list[Snapshot]


class SnapshotRestored(Response):
    session_id: str
    restored: str
    version: int
    content: str


class RoleChanged(ActionResult):
    session_id: str
    user_id: str
    role: str


# -- ai --------------------------------------------------------------------------------
AiRole = Literal["system", "user", "assistant", "tool"]


class ChatMessage(Request):
    """One message of a chat, OpenAI's format."""

    role: AiRole
    content: str


class ChatRequest(Request):
    """``POST /ai/chat``: model ``<provider>/<model>`` (None: the server's default)."""

    messages: list[ChatMessage] = Field(min_length=1)
    model: str | None = None
    stream: bool = False
    max_tokens: int | None = Field(None, ge=1)
    temperature: float | None = Field(None, ge=0, le=2)
    top_p: float | None = Field(None, gt=0, le=1)
    stop: list[str] | None = None


class ChatUsage(Response):
    prompt_tokens: int = 0
    completion_tokens: int = 0
    total_tokens: int = 0


class ChatChoice(Response):
    index: int = 0
    message: ChatMessage
    finish_reason: str | None = None


class ChatCompletion(Response):
    """A whole chat answer (OpenAI's ``chat.completion``, plus ``provider``,
    ``usage_estimated`` and ``latency_ms``)."""

    id: str
    object: str = "chat.completion"
    created: int = 0
    model: str
    provider: str | None = None
    choices: list[ChatChoice]
    usage: ChatUsage = Field(default_factory=ChatUsage)
    usage_estimated: bool = False
    latency_ms: float | None = None

    @property
    def content(self) -> str:
        """The answer's text."""
        return self.choices[0].message.content if self.choices else ""

    @property
    def finish_reason(self) -> str | None:
        return self.choices[0].finish_reason if self.choices else None


class ChatDelta(Response):
    """A piece of a streamed answer: text (``content``), or on the last pieces the
    ``finish_reason`` and then the ``usage``."""

    id: str = ""
    model: str = ""
    content: str = ""
    finish_reason: str | None = None
    usage: ChatUsage | None = None
    usage_estimated: bool | None = None


class AiRequestResult(Response):
    """``POST /ai/request`` (the original PlexiChat's shape)."""

    request_id: str
    model_id: str
    content: str
    usage: ChatUsage
    usage_estimated: bool = False
    finish_reason: str | None = None
    cost: float | None = None
    latency_ms: float
    provider: str
    timestamp: dt.datetime
    success: bool
    error: str | None = None


class AiModel(Response):
    id: str
    name: str
    provider: str
    kind: str = ""
    owned_by: str = ""
    description: str = ""
    capabilities: list[str] = Field(default_factory=list)
    status: str = "available"
    max_tokens: int | None = None
    deterministic: bool = False


class AiModelList(Response):
    data: list[AiModel]
    total: int
    default_model: str
    errors: list[dict[str, Any]] = Field(default_factory=list)


class AiProvider(Response):
    """A provider's settings; the API key is never sent, only ``api_key_set`` and
    ``api_key_hint``."""

    name: str
    kind: str
    builtin: bool = False
    enabled: bool = True
    base_url: str | None = None
    model_path: str | None = None
    timeout: float | None = None
    models: list[str] = Field(default_factory=list)
    api_key_set: bool = False
    api_key_hint: str | None = None
    description: str = ""
    created_at: dt.datetime | None = None
    updated_at: dt.datetime | None = None


class AiProviderList(Response):
    providers: list[AiProvider]
    total: int


class AiProviderConfig(Request):
    """``PUT /ai/providers/{name}``: fields left at None keep their value."""

    kind: Literal["openai_compatible", "local_gguf"] | None = None
    base_url: str | None = None
    api_key: str | None = None
    clear_api_key: bool | None = None
    enabled: bool | None = None
    timeout: float | None = Field(None, gt=0, le=3600)
    models: list[str] | None = None
    model_path: str | None = None


class AiProviderTest(Response):
    provider: str
    ok: bool
    model: str | None = None
    latency_ms: float | None = None
    reply: str | None = None
    usage: ChatUsage | None = None
    error: str | None = None
    status_code: int | None = None


class AiProviderHealth(Response):
    name: str
    kind: str
    enabled: bool
    status: Literal["healthy", "unreachable", "error", "disabled"]
    reachable: bool | None = None
    latency_ms: float | None = None
    models: list[str] = Field(default_factory=list)
    error: str | None = None


class AiHealth(Response):
    status: Literal["healthy", "degraded"]
    checked_at: dt.datetime
    providers: list[AiProviderHealth]
    healthy: int = 0
    unhealthy: int = 0


class AiUsageFigures(Response):
    requests: int = 0
    ok: int = 0
    errors: int = 0
    cancelled: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    total_tokens: int = 0
    estimated_requests: int = 0
    latency_p50_ms: float | None = None
    latency_p95_ms: float | None = None


class AiModelUsage(AiUsageFigures):
    model: str
    provider: str


class AiUserUsage(Response):
    user_id: str | None
    username: str | None = None
    totals: AiUsageFigures
    models: list[AiModelUsage]


class AiDayUsage(AiUsageFigures):
    date: dt.date


class AiUsage(Response):
    period_days: int
    since: dt.datetime
    all_users: bool = False
    totals: AiUsageFigures
    users: list[AiUserUsage]
    daily: list[AiDayUsage]


class ModerationMatch(Response):
    category: str
    rule: str
    start: int
    end: int


class ModerationResult(Response):
    flagged: bool
    categories: dict[str, bool]
    category_counts: dict[str, int] = Field(default_factory=dict)
    matches: list[ModerationMatch]


class Moderation(Response):
    """``POST /ai/moderate``: local rules; ``checks`` says what they look for and
    ``not_checked`` what they cannot see."""

    id: str
    model: str
    flagged: bool
    results: list[ModerationResult]
    checks: list[dict[str, str]]
    not_checked: list[str]
