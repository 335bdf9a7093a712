// The Store: everything hutch remembers. One interface, several implementations, chosen by name
// through store/registry.h and all held to one conformance suite (store_test.cc).
// Callers never see SQL. All methods are thread-safe and blocking: call them off network threads.
#pragma once

#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "common/status.h"
#include "core/activity.h"
#include "core/agent.h"
#include "core/event.h"
#include "core/session.h"
#include "core/template.h"
#include "core/usage.h"
#include "core/workshop.h"

namespace hutch::store {

struct SessionFilter {
  std::string owner;                                        // empty: every owner
  std::optional<core::SessionState> state;                  // only sessions in this state
  std::vector<std::pair<std::string, std::string>> labels;  // all must match
  bool include_deleted = false;                             // include soft-deleted sessions
  bool live_only = false;  // leave out terminated and cancelled sessions
  std::string parent_id;   // only the children of this session (forks, from_checkpoint)
  // Only sessions whose name matches this glob or whose title contains a match (core/glob.h);
  // empty: no such filter. Applied in the query, before the page limit.
  std::string q;
  int limit = 100;         // 1..1000
  std::string page_token;  // from the previous page; empty for the first
};

struct SessionPage {
  std::vector<core::Session> sessions;
  std::string next_page_token;  // empty when this is the last page
};

// An API token, stored by hash only (the token itself is shown once, at creation).
struct TokenRecord {
  std::string id;       // "tok_…"
  std::string user_id;  // owner of the token
  std::string name;
  std::string hash;  // hex SHA-256 of the token
  std::vector<std::string> scopes;
  TimePoint created_at;
  std::optional<TimePoint> expires_at;
  std::optional<TimePoint> last_used_at;
  bool revoked = false;
};

// Per-user limits; an unset field means no limit. The server's default applies to users who
// set none (see QuotaLimits::Over).
struct QuotaLimits {
  std::optional<int64_t> max_sessions;     // live sessions at once
  std::optional<double> max_cpus;          // sum of live sessions' resources.cpus
  std::optional<int64_t> max_memory_mb;    // sum of live sessions' resources.memory_mb
  std::optional<int64_t> max_disk_mb;      // sum of live sessions' resources.disk_mb
  std::optional<int64_t> max_ttl_seconds;  // longest ttl_seconds a session may ask for
  bool operator==(const QuotaLimits&) const = default;
  // Each field of `over` that is set replaces the one here.
  QuotaLimits Over(const QuotaLimits& over) const;
};

// What an owner's live (non-final) sessions hold.
struct Usage {
  int64_t sessions = 0;
  double cpus = 0;
  int64_t memory_mb = 0;
  int64_t disk_mb = 0;
};

// Roles: "admin" (everything), "user" (own objects), "instructor" (also runs workshops and acts
// for their participants) and "participant" (made for one workshop; docs/workshops.md).
struct User {
  std::string id;    // "usr_…"
  std::string name;  // login name: a DNS label, unique, never changes
  std::string role = "user";
  bool disabled = false;
  QuotaLimits quota;  // the user's own limits over the server default
  TimePoint created_at;
  std::optional<TimePoint> disabled_at;
};

// One audited request: who did what to which object, from where, with what outcome.
struct AuditRecord {
  int64_t id = 0;  // assigned by the store, increasing
  TimePoint at;
  std::string user_id;       // the authenticated user; empty when the request was not
  std::string token_id;      // the token used (its id, never the token)
  std::string on_behalf_of;  // the user an admin acted for (?owner= / X-Hutch-Owner), else empty
  std::string action;        // "sessions.create", "sessions.exec", "tokens.revoke", …
  std::string method;        // "POST"
  std::string path;          // "/v1/sessions/ses_x/exec" (no query string)
  std::string object_type;   // "session", "user", "token", or empty
  std::string object_id;
  std::string object_owner;  // the object's owner, when known: lets users read their own trail
  std::string peer;          // "127.0.0.1:53412"
  int status = 0;            // the HTTP status answered
  std::string detail;        // what else the action names: the line entered (attach.command)
};

struct AuditFilter {
  std::string user_id;     // records made by this user
  std::string visible_to;  // records made by this user, on their behalf, or about objects they own
  std::string object_id;   // e.g. a session id
  std::optional<TimePoint> since;
  int limit = 100;         // 1..1000
  std::string page_token;  // newest first
};

struct AuditPage {
  std::vector<AuditRecord> records;
  std::string next_page_token;
};

struct EventFilter {
  std::string owner;               // empty: every owner's events
  std::string session_id;          // empty: every session's
  std::vector<std::string> types;  // any of these; empty: every type
  int64_t after_id = 0;            // only events with a larger id (the cursor)
  std::optional<TimePoint> since;  // only events at or after this time
  int limit = 100;                 // 1..1000
};

// Which activity records ListActivity returns (docs/workshops.md, "Activity"). Every set field
// narrows the result.
struct ActivityFilter {
  // Who may see them: records of `owner`'s sessions, or of sessions of one of `workshops` (an
  // instructor's). Neither set: every record (admin).
  std::string owner;
  std::vector<std::string> workshops;
  std::string session_id;
  std::string workshop_id;
  std::string session_owner;       // the session's owner (user= and participant=)
  std::vector<std::string> types;  // core::IsActivityTypePattern terms: any of them
  std::optional<TimePoint> since;  // at >= since
  std::optional<TimePoint> until;  // at < until
  int64_t after_id = 0;            // id > after_id (the cursor)
  int limit = 100;                 // 1..1000
};

// A webhook: events of `owner`'s sessions (of every session when `all_sessions`) are POSTed to
// `url`, signed with `secret`.
struct Webhook {
  std::string id;     // "whk_…"
  std::string owner;  // user id
  std::string url;
  std::vector<std::string> events;  // event types, or {"*"} for every type
  std::string secret;               // the HMAC key; stored as given, never shown by the API
  // Made by an admin (not acting for a user): every session's events, while the owner is still
  // an admin.
  bool all_sessions = false;
  bool active = true;
  TimePoint created_at;
  // Set by CreateWebhook: the latest event id when the webhook was made. Only later events are
  // delivered to it, however far behind the dispatcher is.
  int64_t start_event_id = 0;
};

// A long-running job (image import and build, commit) that a client follows with
// GET /v1/tasks/{id}. States: queued → running → succeeded | failed. A task that was queued or
// running when the server stopped ends failed (FailUnfinishedTasks at start).
struct Task {
  std::string id;     // "tsk_…"
  std::string owner;  // user id
  std::string kind;   // "image.import", "image.build", "session.commit"
  std::string state = "queued";
  double progress = 0;        // 0..1
  std::string message;        // what it does now, for people
  std::string target;         // what it works on ("image python", "session ses_…")
  std::string result_json;    // on success: a JSON value ("" until then)
  std::string error_code;     // on failure: an API error code ("invalid_argument", …)
  std::string error_message;  // on failure
  TimePoint created_at;
  TimePoint updated_at;
  std::optional<TimePoint> finished_at;
};

inline constexpr std::string_view kDeliveryPending = "pending";  // due at next_attempt_at
inline constexpr std::string_view kDeliveryOk = "ok";            // the receiver answered 2xx
inline constexpr std::string_view kDeliveryFailed = "failed";    // this attempt failed

// One attempt to deliver one event to one webhook. A row is written `pending`, becomes `ok` or
// `failed` when tried, and a failed attempt that will be retried is followed by a new pending row
// with attempt + 1: the rows of a (webhook, event) are its delivery log.
struct WebhookDelivery {
  int64_t id = 0;  // assigned by the store, increasing
  std::string webhook_id;
  int64_t event_id = 0;
  int attempt = 1;  // 1, 2, …
  TimePoint at;     // pending: when it was queued; ok/failed: when the attempt started
  std::string status = std::string(kDeliveryPending);
  std::optional<int> http_status;  // the receiver's answer, when there was one
  std::string error;               // why the attempt failed, empty when it did not
  // pending: when it is due. failed: when the retry is due, unset when there will be none.
  std::optional<TimePoint> next_attempt_at;
  std::optional<int64_t> duration_ms;  // how long the attempt took
};

struct DeliveryPage {
  std::vector<WebhookDelivery> deliveries;
  std::string next_page_token;
};

// An attach session's row (docs/attach.md): the columns lists filter on, and the whole session
// as JSON (controller/attach_service.cc writes and reads it).
struct AttachRow {
  std::string id;  // "att_…"
  std::string owner;
  std::string service_name;  // "" when attached by target
  std::string state;         // provisioning | active | terminated
  TimePoint created_at;
  std::string body;  // JSON
};

// A volume (docs/server.md, "Volumes"): storage owned by a user that outlives the sessions it is
// attached to. The driver keeps its data; the store, what it is called and how big it may grow.
struct Volume {
  std::string id;     // "vol_…"
  std::string name;   // DNS label, unique per owner
  std::string owner;  // user id
  int64_t size_mb = 0;
  TimePoint created_at;
  // Schema 17 (docs/agents.md, "Persistent state"): the session whose `persist: true` state this
  // volume holds ("" for a volume a user made). That session's record owns it: nothing removes
  // it but a purge of the record or the end of retained_until, which a soft delete of the record
  // sets (nullopt while the record is not deleted).
  std::string session_id = {};
  std::optional<TimePoint> retained_until = {};
};

// A port's settings (docs/api.md, "Ports"): a row exists once the owner set something. The
// settings end with the session: a terminal transition and a purge remove them.
struct PortSetting {
  std::string session_id;
  int port = 0;  // 1..65535
  // Anyone who can reach the server reaches the port, without a token or signed URL.
  bool is_public = false;
  TimePoint updated_at;
};

// What one session's sandboxes ran into at one of their limits (the abuse report): `reading` is
// the cumulative kernel counter of sandbox `instance` when last read, `count` what all its
// sandboxes ran into, summed.
struct AbuseCounter {
  std::string session_id;
  std::string kind;  // controller/abuse.h names them
  std::string owner;
  std::string instance;
  int64_t reading = 0;
  int64_t count = 0;
  TimePoint first_seen;
  TimePoint last_seen;
};

// Which metered usage ListUsage sums (docs/usage.md).
struct UsageFilter {
  std::string owner;        // empty: every owner's
  std::string workshop_id;  // empty: any (or none)
  // Buckets whose start is in [since, until); unset: unbounded.
  std::optional<TimePoint> since;
  std::optional<TimePoint> until;
};

class Store {
 public:
  virtual ~Store() = default;

  // Inserts the session and its first history entry in one transaction. `conflict` when a live
  // session of the same owner already has this name.
  virtual Status CreateSession(const core::Session& session, const core::HistoryEntry& first) = 0;

  // By id, or by name among the owner's live sessions (then, failing that, the most recent
  // ended one of that name). `owner` empty matches any owner (admin). `not_found` otherwise.
  virtual Result<core::Session> GetSession(std::string_view owner, std::string_view id_or_name) = 0;

  // Ordered by created_at, then id (newest first).
  virtual Result<SessionPage> ListSessions(const SessionFilter& filter) = 0;

  // Writes every field of `session` (matched by id). `not_found` if there is no such row;
  // `conflict` if a name change collides with another live session of the owner.
  virtual Status UpdateSession(const core::Session& session) = 0;

  // Writes every field of `session` if the stored state still equals `expected` (else
  // `conflict`), for field changes (expiry, activity, labels) that must not undo a concurrent
  // transition. Records no history.
  virtual Status UpdateSessionIf(const core::Session& session, core::SessionState expected) = 0;

  // The atomic state change: in one transaction, checks that the stored state still equals
  // `expected` (else `conflict`: someone else moved it), writes `session`, appends `entry`.
  virtual Status TransitionSession(const core::Session& session, core::SessionState expected,
                                   const core::HistoryEntry& entry) = 0;

  // Oldest first.
  virtual Result<std::vector<core::HistoryEntry>> GetHistory(std::string_view session_id) = 0;

  // Removes the session row, its history and its port settings. Its events stay: they are the log
  // of what happened, and webhooks may still be delivering them.
  virtual Status PurgeSession(std::string_view session_id) = 0;

  virtual Status CreateToken(const TokenRecord& token) = 0;
  virtual Result<TokenRecord> GetTokenByHash(std::string_view hash) = 0;
  virtual Status TouchToken(std::string_view token_id, TimePoint at) = 0;
  virtual Result<std::vector<TokenRecord>> ListTokens(std::string_view user_id) = 0;

  // Like CreateSession, but first checks in the same transaction that the owner's live sessions
  // plus this one stay within `quota`; otherwise resource_exhausted naming the quota, its limit
  // and the current usage ("quota max_sessions exceeded: 5 of 5 live sessions in use"). Of any
  // number of concurrent calls, exactly as many succeed as the quota admits.
  virtual Status CreateSessionWithinQuota(const core::Session& session,
                                          const core::HistoryEntry& first,
                                          const QuotaLimits& quota) = 0;
  virtual Result<Usage> GetUsage(std::string_view owner) = 0;

  // Users. `conflict` when the name is taken.
  virtual Status CreateUser(const User& user) = 0;
  // By id ("usr_…") or by name. `not_found` otherwise.
  virtual Result<User> GetUser(std::string_view id_or_name) = 0;
  // Ordered by name.
  virtual Result<std::vector<User>> ListUsers() = 0;
  // Writes role, disabled, disabled_at and quota (id and name never change).
  virtual Status UpdateUser(const User& user) = 0;
  // Removes the user and their tokens. `conflict` while they own live sessions.
  virtual Status DeleteUser(std::string_view id) = 0;

  virtual Result<TokenRecord> GetToken(std::string_view token_id) = 0;
  // Marks the token revoked; revoking twice is OK.
  virtual Status RevokeToken(std::string_view token_id) = 0;

  // Appends the records in one transaction (the API batches them).
  virtual Status AppendAudit(const std::vector<AuditRecord>& records) = 0;
  // Newest first.
  virtual Result<AuditPage> ListAudit(const AuditFilter& filter) = 0;
  // Deletes records older than `before` (retention); returns how many.
  virtual Result<int64_t> PurgeAuditBefore(TimePoint before) = 0;

  // --- Events. CreateSession, CreateSessionWithinQuota and TransitionSession append the event
  // of their history entry (core::EventForTransition) in their own transaction: a transition is
  // stored with its event or not at all.

  // Appends an event that is no transition (keepalive, extended, …); returns its id.
  virtual Result<int64_t> AppendEvent(const core::Event& event) = 0;
  // UpdateSession and AppendEvent in one transaction, for a change that is an event (keepalive
  // and extend move expires_at, PATCH is session.updated): both are stored or neither. Returns
  // the event's id.
  virtual Result<int64_t> UpdateSessionWithEvent(const core::Session& session,
                                                 const core::Event& event) = 0;
  // Ascending by id.
  virtual Result<std::vector<core::Event>> ListEvents(const EventFilter& filter) = 0;
  // `not_found` when there is no event with this id.
  virtual Result<core::Event> GetEvent(int64_t id) = 0;
  // The largest event id so far; 0 when there are none.
  virtual Result<int64_t> LatestEventId() = 0;

  // --- Webhooks. Sets start_event_id and returns the webhook as stored.
  virtual Result<Webhook> CreateWebhook(const Webhook& webhook) = 0;
  // `owner` empty matches any owner (admin); another owner's webhook is `not_found`.
  virtual Result<Webhook> GetWebhook(std::string_view owner, std::string_view id) = 0;
  // Newest first; `owner` empty: every owner's.
  virtual Result<std::vector<Webhook>> ListWebhooks(std::string_view owner) = 0;
  // Removes the webhook and its delivery log.
  virtual Status DeleteWebhook(std::string_view id) = 0;

  // --- Webhook deliveries, for the dispatcher (controller/webhooks.h).

  // The id of the last event the dispatcher has queued deliveries for (0 at first).
  virtual Result<int64_t> GetWebhookCursor() = 0;
  // In one transaction: checks that the cursor is still `from` (else `conflict`: another
  // dispatcher moved it), inserts `deliveries` (ids are assigned) and moves the cursor to `to`.
  virtual Status EnqueueDeliveries(int64_t from, int64_t to,
                                   const std::vector<WebhookDelivery>& deliveries) = 0;
  // Pending deliveries due at `now`: per webhook only the one due first, earliest first.
  virtual Result<std::vector<WebhookDelivery>> DueDeliveries(TimePoint now, int limit) = 0;
  // In one transaction: rewrites the pending row `done` (by id) with its outcome and, when
  // `retry` is set, inserts it as the next pending attempt. `not_found` when the row is gone
  // (its webhook was deleted meanwhile); then nothing is written.
  virtual Status FinishDelivery(const WebhookDelivery& done,
                                const std::optional<WebhookDelivery>& retry) = 0;
  // The webhook's delivery log, newest first.
  virtual Result<DeliveryPage> ListDeliveries(std::string_view webhook_id, int limit,
                                              std::string_view page_token) = 0;

  // --- Tasks. `conflict` when the id exists.
  virtual Status CreateTask(const Task& task) = 0;
  // Rewrites every field but id, owner and created_at.
  virtual Status UpdateTask(const Task& task) = 0;
  // `owner` empty matches any owner (admin); another owner's task is `not_found`.
  virtual Result<Task> GetTask(std::string_view owner, std::string_view id) = 0;
  // Every queued or running task becomes failed (code unavailable) with `reason`: the server
  // that ran it is gone. Returns how many.
  virtual Result<int64_t> FailUnfinishedTasks(std::string_view reason, TimePoint at) = 0;
  // The ids of the live (not terminated or cancelled) sessions that run image `image`.
  virtual Result<std::vector<std::string>> LiveSessionsUsingImage(std::string_view image) = 0;
  // Templates, by (owner, name). PutTemplate inserts or replaces (keeping created_at) and says
  // whether it inserted.
  virtual Result<bool> PutTemplate(const core::SessionTemplate& t) = 0;
  // Another owner's template is not_found; owner "" finds any owner's (the first by name).
  virtual Result<core::SessionTemplate> GetTemplate(std::string_view owner,
                                                    std::string_view name) = 0;
  // By name; owner "": every owner's.
  virtual Result<std::vector<core::SessionTemplate>> ListTemplates(std::string_view owner) = 0;
  // Every template that is public or has a grant, by name: core::TemplateSharedWith tells who
  // of their users may start from them.
  virtual Result<std::vector<core::SessionTemplate>> ListSharedTemplates() = 0;
  virtual Status DeleteTemplate(std::string_view owner, std::string_view name) = 0;

  // Attach targets (POST /v1/targets) by service name; `spec` is core::TargetRegistrationJson.
  // Create: conflict when the name is taken.
  virtual Status CreateAttachTarget(std::string_view service_name, std::string_view spec,
                                    TimePoint created_at) = 0;
  virtual Result<std::string> GetAttachTarget(std::string_view service_name) = 0;
  // Specs, by service name.
  virtual Result<std::vector<std::string>> ListAttachTargets() = 0;
  virtual Status DeleteAttachTarget(std::string_view service_name) = 0;
  // Attach sessions: Put inserts or replaces by id. List: newest first; owner "" every owner's,
  // state "" every state; at most `limit` (1..1000).
  virtual Status PutAttachSession(const AttachRow& row) = 0;
  virtual Result<AttachRow> GetAttachSession(std::string_view id) = 0;
  virtual Result<std::vector<AttachRow>> ListAttachSessions(std::string_view owner,
                                                            std::string_view state, int limit) = 0;

  // Volumes. CreateVolume: conflict when the owner has one of that name.
  virtual Status CreateVolume(const Volume& v) = 0;
  // By id or name; another owner's is not_found; owner "": any owner's.
  virtual Result<Volume> GetVolume(std::string_view owner, std::string_view id_or_name) = 0;
  virtual Result<std::vector<Volume>> ListVolumes(std::string_view owner) = 0;
  virtual Status DeleteVolume(std::string_view id) = 0;
  // The live sessions (any state but terminated and cancelled) that have volume `id` attached.
  virtual Result<std::vector<core::Session>> SessionsUsingVolume(std::string_view id) = 0;

  // Port settings. PutPortSetting inserts or replaces the row of (session_id, port), in one
  // statement with the check that the session is there (`not_found`) and live (`conflict`), so
  // no row outlives a session that ends meanwhile.
  virtual Status PutPortSetting(const PortSetting& setting) = 0;
  // The session's rows, by port; none when it has none (or is gone).
  virtual Result<std::vector<PortSetting>> ListPortSettings(std::string_view session_id) = 0;

  // ===========================================================================================
  // Workshops (issue 18, docs/workshops.md; schema version 10). Kept together so a second
  // implementation can port them as one piece.

  // Inserts the workshop and its workshop.created `event` in one transaction. `conflict` when
  // the owner has a workshop of that name that has not ended (completed or cancelled).
  virtual Status CreateWorkshop(const core::Workshop& w, const core::Event& event) = 0;
  // By id, or by name among the owner's (one that has not ended first, then the newest).
  // `owner` empty matches any owner (admin). Another owner's is `not_found`.
  virtual Result<core::Workshop> GetWorkshop(std::string_view owner,
                                             std::string_view id_or_name) = 0;
  // Newest first. `owner` empty: every owner's; `live_only`: leave out completed and cancelled.
  virtual Result<std::vector<core::Workshop>> ListWorkshops(std::string_view owner,
                                                            bool live_only) = 0;
  // Writes every field of `w` if the stored state still equals `expected` (else `conflict`),
  // and appends `event` in the same transaction: a transition or extend is stored with its
  // event or not at all.
  virtual Status UpdateWorkshop(const core::Workshop& w, core::WorkshopState expected,
                                const core::Event& event) = 0;
  // In one transaction: checks that the workshop has not ended and has room for all of them
  // (resource_exhausted "workshop k8s is full: 30 of 30 participants" otherwise), then inserts
  // each participant with its `participant`-role user (users[i] belongs to participants[i]).
  // All or none: a name or email taken (`conflict`, naming it) inserts nothing.
  virtual Status AddParticipants(std::string_view workshop_id, int64_t max_participants,
                                 const std::vector<User>& users,
                                 const std::vector<core::Participant>& participants) = 0;
  // Oldest first.
  virtual Result<std::vector<core::Participant>> ListParticipants(std::string_view workshop_id) = 0;
  // By id within the workshop; `not_found` otherwise.
  virtual Result<core::Participant> GetParticipant(std::string_view workshop_id,
                                                   std::string_view id) = 0;
  // The participant whose identity `user_id` is; `not_found` for any other user.
  virtual Result<core::Participant> GetParticipantByUser(std::string_view user_id) = 0;
  // Compare and set: records `session_id` as the participant's session if it still is
  // `expected` ("" for none), else `conflict`. Keeps two racing provisioners from both
  // recording a session.
  virtual Status SetParticipantSession(std::string_view id, std::string_view expected,
                                       std::string_view session_id) = 0;
  // Removes the participant's row (their user stays, disabled by the caller, as the owner of
  // record of their session). `not_found` when there is none.
  virtual Status DeleteParticipant(std::string_view id) = 0;
  // Join codes. CreateJoinCode: `conflict` when the code exists (the caller draws another).
  virtual Status CreateJoinCode(const core::JoinCode& code) = 0;
  // Oldest first.
  virtual Result<std::vector<core::JoinCode>> ListJoinCodes(std::string_view workshop_id) = 0;
  // By its stored form (core::NormalizeJoinCode); `not_found` otherwise.
  virtual Result<core::JoinCode> GetJoinCode(std::string_view code) = 0;
  // `not_found` when the workshop has no such code.
  virtual Status RevokeJoinCode(std::string_view workshop_id, std::string_view code) = 0;
  // A join, in one transaction: the code is valid at `now` (`not_found` when unknown or
  // revoked, `conflict` "… expired at …", resource_exhausted "… is full: 3 of 3 slots used"),
  // then AddParticipants' checks and inserts for this one participant, and the code's `used`
  // goes up by one. All or nothing: a refused join uses no slot.
  virtual Status JoinWithCode(std::string_view code, TimePoint now, const User& user,
                              const core::Participant& participant) = 0;
  // Sets the hash of the participant's access link ("" revokes it). `not_found` without them.
  virtual Status SetParticipantAccess(std::string_view id, std::string_view access_hash) = 0;
  // The participant whose access link has this hash; `not_found` for any other.
  virtual Result<core::Participant> GetParticipantByAccess(std::string_view access_hash) = 0;
  // Notices (schema version 11): records `key` for the workshop and appends `events` in one
  // transaction; `conflict` (and nothing appended) when the key is recorded already. What makes
  // a notice go out once, across restarts.
  virtual Status AppendNotice(std::string_view key, std::string_view workshop_id, TimePoint at,
                              const std::vector<core::Event>& events) = 0;
  // Named cursors over the event log (the notice mailer's): the last event id stored under
  // `name`, nullopt when none was stored yet.
  virtual Result<std::optional<int64_t>> GetEventCursor(std::string_view name) = 0;
  virtual Status SetEventCursor(std::string_view name, int64_t last_event_id) = 0;
  // ===========================================================================================

  // ===========================================================================================
  // Agents and messages (docs/agents.md; schema versions 14 and 15).

  // `conflict` when the owner has an agent of that name.
  virtual Status CreateAgent(const core::AgentDef& a) = 0;
  // By id or name; another owner's is not_found; owner "": any owner's.
  virtual Result<core::AgentDef> GetAgent(std::string_view owner, std::string_view id_or_name) = 0;
  // By name; owner "": every owner's.
  virtual Result<std::vector<core::AgentDef>> ListAgents(std::string_view owner) = 0;
  // Rewrites every field but id, owner and created_at; `not_found`, or `conflict` on a name
  // another of the owner's agents has.
  virtual Status UpdateAgent(const core::AgentDef& a) = 0;
  virtual Status DeleteAgent(std::string_view id) = 0;
  // Inserts or replaces the session's row.
  virtual Status PutSessionAgents(const core::SessionAgents& sa) = 0;
  // `not_found` when the session has no agents.
  virtual Result<core::SessionAgents> GetSessionAgents(std::string_view session_id) = 0;
  // Every session's row (for the message router at start).
  virtual Result<std::vector<core::SessionAgents>> ListSessionAgents() = 0;
  // In one transaction: checks that agent_state is still `expected` (else `conflict`), writes
  // `to` and `reason`, appends `event`.
  virtual Status SetAgentState(std::string_view session_id, core::AgentState expected,
                               core::AgentState to, std::string_view reason, TimePoint at,
                               const core::Event& event) = 0;
  // Appends the message (and, for a reply, the acknowledgement of what it answers) in one
  // transaction; returns its id. Ids increase in the order messages become visible.
  virtual Result<int64_t> AppendMessage(const core::Message& m,
                                        const std::optional<core::MessageAck>& ack) = 0;
  // The session's messages with id > after, oldest first.
  virtual Result<std::vector<core::Message>> ListMessages(std::string_view session_id,
                                                          int64_t after, int limit) = 0;
  // Idempotent: acknowledging twice is OK.
  virtual Status AckMessage(std::string_view session_id, const core::MessageAck& ack,
                            TimePoint at) = 0;
  virtual Result<std::vector<core::MessageAck>> ListAcks(std::string_view session_id) = 0;
  // ===========================================================================================

  // ===========================================================================================
  // Scenarios, courses and participants' progress (issue 19; docs/workshops.md, "Scenarios and
  // courses"; schema versions 20 and 21). Bodies are core/scenario.h's stored JSON.

  // Scenarios and courses ("courseware") by (kind, owner, name), kind "scenario" or "course".
  // Put inserts or replaces (keeping the row's created_at) and says whether it inserted.
  virtual Result<bool> PutCourseware(std::string_view kind, std::string_view owner,
                                     std::string_view name, std::string_view body,
                                     TimePoint at) = 0;
  // The body; another owner's is not_found.
  virtual Result<std::string> GetCourseware(std::string_view kind, std::string_view owner,
                                            std::string_view name) = 0;
  // Bodies, by name; owner "": every owner's.
  virtual Result<std::vector<std::string>> ListCourseware(std::string_view kind,
                                                          std::string_view owner) = 0;
  virtual Status DeleteCourseware(std::string_view kind, std::string_view owner,
                                  std::string_view name) = 0;
  // What a workshop runs (core::WorkshopPlan, stored form), set once when it is made: conflict
  // when it has one.
  virtual Status PutWorkshopPlan(std::string_view workshop_id, std::string_view body) = 0;
  // not_found when the workshop runs no scenario or course.
  virtual Result<std::string> GetWorkshopPlan(std::string_view workshop_id) = 0;
  // A participant's progress (core::Progress, stored form), compare and set on its version:
  // `expected` 0 inserts the row at version 1 (conflict when there is one); otherwise the row at
  // version `expected` is rewritten at expected + 1 (conflict when it moved on meanwhile).
  virtual Status PutProgress(std::string_view participant_id, std::string_view workshop_id,
                             std::string_view body, int64_t expected, TimePoint at) = 0;
  // {version, body}; not_found when the participant has none yet.
  virtual Result<std::pair<int64_t, std::string>> GetProgress(std::string_view participant_id) = 0;
  // Every stored progress of the workshop's participants, {version, body} each.
  virtual Result<std::vector<std::pair<int64_t, std::string>>> ListProgress(
      std::string_view workshop_id) = 0;
  // ===========================================================================================

  // ===========================================================================================
  // Usage metering (docs/usage.md; schema version 22).

  // The last reading the session's meter recorded; nullopt when none was.
  virtual Result<std::optional<core::MeterPoint>> GetMeterPoint(std::string_view session_id) = 0;
  // In one transaction: checks that the stored point's reading time is still `expected_at`
  // (nullopt: no point stored yet), else `conflict` and nothing written; adds `amounts` to the
  // session's bucket starting at `bucket_start`; stores `point`. So an interval is counted
  // exactly when its end point is stored, and never twice.
  virtual Status RecordUsage(const core::MeterPoint& point, std::optional<TimePoint> expected_at,
                             TimePoint bucket_start, const core::UsageAmounts& amounts) = 0;
  // Per session (by id), the sum of its buckets that `filter` selects.
  virtual Result<std::vector<core::SessionUsage>> ListUsage(const UsageFilter& filter) = 0;

  // The abuse report's counters (docs/api.md, "Abuse report"; schema 23), kept per session and
  // kind, also after the session is gone. The meter writes them (controller/abuse.h).
  virtual Result<std::vector<AbuseCounter>> GetAbuseCounters(std::string_view session_id) = 0;
  // Inserts or replaces the counter of (session_id, kind).
  virtual Status PutAbuseCounter(const AbuseCounter& counter) = 0;
  // Every counter last seen at or after `since`, by session and kind.
  virtual Result<std::vector<AbuseCounter>> ListAbuseCounters(TimePoint since) = 0;
  // ===========================================================================================

  // ===========================================================================================
  // Activity (docs/workshops.md, "Activity"; schema version 19). The session.* records are not
  // appended here: the stores copy them from the session's transition events, in the event's
  // transaction (core::ActivityTypeForEvent).

  // Appends the records in one transaction, ids in order; a record whose (session, origin) is
  // stored already is skipped. Returns how many were stored.
  virtual Result<int64_t> AppendActivity(const std::vector<core::ActivityRecord>& records) = 0;
  // Ascending by id.
  virtual Result<std::vector<core::ActivityRecord>> ListActivity(const ActivityFilter& filter) = 0;
  // The largest activity id so far; 0 when there is none.
  virtual Result<int64_t> LatestActivityId() = 0;
  // Deletes records older than `before` (retention); returns how many.
  virtual Result<int64_t> PurgeActivityBefore(TimePoint before) = 0;
  // ===========================================================================================

  // ===========================================================================================
  // Persistent state (docs/agents.md, "Persistent state"; schema 17).

  // Which session's record owns the volume ("": none) and the end of its retention window
  // (nullopt: no window, the record is not deleted). not_found when there is no such volume.
  virtual Status SetVolumeOwnerSession(std::string_view volume_id, std::string_view session_id,
                                       std::optional<TimePoint> retained_until) = 0;
  // The volume the session's record owns; not_found when it owns none.
  virtual Result<Volume> GetSessionVolume(std::string_view session_id) = 0;
  // Volumes whose retention window ended at or before `now`, oldest end first.
  virtual Result<std::vector<Volume>> ListRetentionEnded(TimePoint now, int limit) = 0;
  // ===========================================================================================

  // The schema version migrations brought the database to.
  virtual int SchemaVersion() = 0;

  // --- batch sessions (migration 18) -------------------------------------------------------
  // Every session (final and deleted ones too) whose depends_on names `id`, oldest first.
  virtual Result<std::vector<core::Session>> SessionsDependingOn(std::string_view id) = 0;
};

}  // namespace hutch::store
