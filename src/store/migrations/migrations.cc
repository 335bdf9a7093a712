#include "store/migrations/migrations.h"

#include <array>
#include <regex>

namespace hutch::store {

namespace {

// Portability notes: PostgreSQL runs these same migrations through ToDialect (migrations.h).
// - Only TEXT, BIGINT, DOUBLE PRECISION and INTEGER. SQLite gives BIGINT integer affinity and
//   DOUBLE PRECISION real affinity, and PostgreSQL's INTEGER (4 bytes) could not hold unix millis
//   nor its REAL (4 bytes) a cpus value like 1.1 exactly; so 8-byte types are spelled out.
// - Times are unix milliseconds (NULL when unset); maps and lists are JSON text.
// - The one dialect difference is the history key (and, from version 3, the audit key; from
//   version 4 the events and deliveries keys): SQLite's INTEGER PRIMARY KEY AUTOINCREMENT is
//   PostgreSQL's BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY (or BIGSERIAL). Both never reuse
//   a value, so these ids stay usable as cursors after a purge.
// - Readers tail events by id (SSE, the webhook dispatcher), which needs ids to become visible in
//   id order. SQLite has one writer at a time, so they do; PostgreSQL hands out sequence values
//   before commit, so its writers of events must serialize (a transaction-level advisory lock
//   taken before the insert) or tailing readers could step over a late commit.
// - Partial unique indexes exist in both with the same syntax.

constexpr std::string_view kV1Sessions = R"sql(
CREATE TABLE sessions (
  id TEXT PRIMARY KEY,
  name TEXT NOT NULL,
  owner TEXT NOT NULL,
  state TEXT NOT NULL,
  activity TEXT NOT NULL,
  reason TEXT NOT NULL,
  image TEXT NOT NULL,
  template_name TEXT NOT NULL,
  cpus DOUBLE PRECISION NOT NULL,
  memory_mb BIGINT NOT NULL,
  pids BIGINT NOT NULL,
  disk_mb BIGINT NOT NULL,
  network TEXT NOT NULL,
  env TEXT NOT NULL,
  labels TEXT NOT NULL,
  metadata TEXT NOT NULL,
  created_at BIGINT NOT NULL,
  start_at BIGINT,
  started_at BIGINT,
  expires_at BIGINT,
  ttl_seconds BIGINT,
  idle_timeout_seconds BIGINT,
  on_idle TEXT NOT NULL,
  last_activity_at BIGINT,
  paused_at BIGINT,
  ended_at BIGINT,
  deleted_at BIGINT,
  parent_id TEXT NOT NULL,
  workshop_id TEXT NOT NULL,
  node TEXT NOT NULL,
  error TEXT NOT NULL,
  driver_state TEXT NOT NULL
);

-- Listing is newest first per owner (the API's default) or across owners (admin); id breaks
-- ties in created_at so keyset pagination has a total order.
CREATE INDEX sessions_owner_created ON sessions (owner, created_at, id);
CREATE INDEX sessions_created ON sessions (created_at, id);
-- GetSession by name, with or without an owner.
CREATE INDEX sessions_name ON sessions (name, owner);

-- A name is unique per owner among live sessions only: ended sessions keep their name for the
-- record while a new session takes it. Keep the list in step with core::IsFinal.
CREATE UNIQUE INDEX sessions_live_name ON sessions (owner, name)
  WHERE state NOT IN ('terminated', 'cancelled');

CREATE TABLE session_history (
  id INTEGER PRIMARY KEY AUTOINCREMENT,
  session_id TEXT NOT NULL REFERENCES sessions (id),
  from_state TEXT,
  to_state TEXT NOT NULL,
  reason TEXT NOT NULL,
  actor TEXT NOT NULL,
  at BIGINT NOT NULL,
  message TEXT NOT NULL
);

CREATE INDEX session_history_session ON session_history (session_id, id);
)sql";

constexpr std::string_view kV2Tokens = R"sql(
CREATE TABLE tokens (
  id TEXT PRIMARY KEY,
  user_id TEXT NOT NULL,
  name TEXT NOT NULL,
  hash TEXT NOT NULL UNIQUE,
  scopes TEXT NOT NULL,
  created_at BIGINT NOT NULL,
  expires_at BIGINT,
  last_used_at BIGINT,
  revoked INTEGER NOT NULL DEFAULT 0
);

CREATE INDEX tokens_user ON tokens (user_id, created_at, id);
)sql";

// Users carry their own quota: one nullable column per limit, NULL meaning "no limit of the
// user's own" (the server default applies, see QuotaLimits::Over). No foreign key points at
// users.id: the bootstrap admin's token has user_id "admin" and no users row, ended sessions
// keep their owner after the user goes, and DeleteUser removes the tokens itself.
//
// The audit trail is append-only and read newest first, by id (the insertion order) rather than
// by `at`, which clocks can step. Its key is the same auto-increment as session_history's, so
// ids stay usable as page cursors after a purge. Each list filter has an index that ends in id,
// so a page is one index range read backwards; `at` has its own for retention purges and `since`.
// on_behalf_of gets one too: visible_to reads each of user_id, object_owner and on_behalf_of
// through its own index (see ListAudit in the SQLite store).
constexpr std::string_view kV3UsersAudit = R"sql(
CREATE TABLE users (
  id TEXT PRIMARY KEY,
  name TEXT NOT NULL UNIQUE,
  role TEXT NOT NULL,
  disabled INTEGER NOT NULL DEFAULT 0,
  disabled_at BIGINT,
  created_at BIGINT NOT NULL,
  max_sessions BIGINT,
  max_cpus DOUBLE PRECISION,
  max_memory_mb BIGINT,
  max_disk_mb BIGINT,
  max_ttl_seconds BIGINT
);

CREATE TABLE audit (
  id INTEGER PRIMARY KEY AUTOINCREMENT,
  at BIGINT NOT NULL,
  user_id TEXT NOT NULL,
  token_id TEXT NOT NULL,
  on_behalf_of TEXT NOT NULL,
  action TEXT NOT NULL,
  method TEXT NOT NULL,
  path TEXT NOT NULL,
  object_type TEXT NOT NULL,
  object_id TEXT NOT NULL,
  object_owner TEXT NOT NULL,
  peer TEXT NOT NULL,
  status INTEGER NOT NULL
);

CREATE INDEX audit_at ON audit (at);
CREATE INDEX audit_user ON audit (user_id, id);
CREATE INDEX audit_object_owner ON audit (object_owner, id);
CREATE INDEX audit_object ON audit (object_id, id);
CREATE INDEX audit_on_behalf_of ON audit (on_behalf_of, id);
)sql";

// Events are append-only and read in id order, like the audit trail; the id is the SSE event id
// and the cursor of pages, streams and the webhook dispatcher. Listing filters by owner (users
// see their own sessions' events) or by session, each through an index that ends in id.
//
// Webhook deliveries: one row per attempt (see store::WebhookDelivery). The dispatcher reads the
// pending ones by next_attempt_at through a partial index, so ok and failed rows, the bulk of
// the log, cost nothing there. webhook_cursor is a single row: the last event the dispatcher has
// fanned out, moved in the same transaction as the pending rows it queues.
constexpr std::string_view kV4EventsWebhooks = R"sql(
CREATE TABLE events (
  id INTEGER PRIMARY KEY AUTOINCREMENT,
  at BIGINT NOT NULL,
  type TEXT NOT NULL,
  session_id TEXT NOT NULL,
  owner TEXT NOT NULL,
  reason TEXT NOT NULL,
  actor TEXT NOT NULL,
  data TEXT NOT NULL
);

CREATE INDEX events_owner ON events (owner, id);
CREATE INDEX events_session ON events (session_id, id);
CREATE INDEX events_at ON events (at);

CREATE TABLE webhooks (
  id TEXT PRIMARY KEY,
  owner TEXT NOT NULL,
  url TEXT NOT NULL,
  events TEXT NOT NULL,
  secret TEXT NOT NULL,
  all_sessions INTEGER NOT NULL DEFAULT 0,
  active INTEGER NOT NULL DEFAULT 1,
  created_at BIGINT NOT NULL,
  start_event_id BIGINT NOT NULL
);

CREATE INDEX webhooks_owner ON webhooks (owner, created_at, id);

CREATE TABLE webhook_deliveries (
  id INTEGER PRIMARY KEY AUTOINCREMENT,
  webhook_id TEXT NOT NULL,
  event_id BIGINT NOT NULL,
  attempt INTEGER NOT NULL,
  at BIGINT NOT NULL,
  status TEXT NOT NULL,
  http_status INTEGER,
  error TEXT NOT NULL,
  next_attempt_at BIGINT,
  duration_ms BIGINT
);

CREATE INDEX webhook_deliveries_webhook ON webhook_deliveries (webhook_id, id);
CREATE INDEX webhook_deliveries_due ON webhook_deliveries (next_attempt_at, id)
  WHERE status = 'pending';

CREATE TABLE webhook_cursor (
  id INTEGER PRIMARY KEY CHECK (id = 1),
  last_event_id BIGINT NOT NULL
);
INSERT INTO webhook_cursor (id, last_event_id) VALUES (1, 0);
)sql";

// Lineage (GET /v1/sessions/{id}/lineage) looks children up by parent. Checkpoints themselves
// are files with signed manifests beside their images (drivers/local/checkpoint_files.h): the
// manifest is the record, so an image and what describes it cannot drift apart.
constexpr std::string_view kV5Lineage = R"sql(
CREATE INDEX sessions_parent ON sessions (parent_id, created_at);
)sql";

// Tasks (GET /v1/tasks/{id}): image imports and builds, commits. Images themselves are files
// with signed manifests (drivers/local/image_store.h), like checkpoints; the sessions that use
// an image are found by its name.
constexpr std::string_view kV6Tasks = R"sql(
CREATE TABLE tasks (
  id TEXT PRIMARY KEY,
  owner TEXT NOT NULL,
  kind TEXT NOT NULL,
  state TEXT NOT NULL,
  progress REAL NOT NULL,
  message TEXT NOT NULL,
  target TEXT NOT NULL,
  result TEXT NOT NULL,
  error_code TEXT NOT NULL,
  error_message TEXT NOT NULL,
  created_at BIGINT NOT NULL,
  updated_at BIGINT NOT NULL,
  finished_at BIGINT
);

CREATE INDEX tasks_unfinished ON tasks (state) WHERE state IN ('queued', 'running');
CREATE INDEX sessions_image ON sessions (image, state);
)sql";

// Templates and volumes (docs/server.md). A session's attached volumes and setup commands are
// JSON columns of its row (like env and labels); SessionsUsingVolume finds the live sessions
// that name a volume with a LIKE on the column and checks the JSON.
constexpr std::string_view kV7TemplatesVolumes = R"sql(
ALTER TABLE sessions ADD COLUMN volumes TEXT NOT NULL DEFAULT '[]';
ALTER TABLE sessions ADD COLUMN setup TEXT NOT NULL DEFAULT '[]';

CREATE TABLE templates (
  owner TEXT NOT NULL,
  name TEXT NOT NULL,
  description TEXT NOT NULL,
  spec TEXT NOT NULL,
  created_at BIGINT NOT NULL,
  updated_at BIGINT NOT NULL,
  PRIMARY KEY (owner, name)
);

CREATE TABLE volumes (
  id TEXT PRIMARY KEY,
  name TEXT NOT NULL,
  owner TEXT NOT NULL,
  size_mb BIGINT NOT NULL,
  created_at BIGINT NOT NULL
);

CREATE UNIQUE INDEX volumes_owner_name ON volumes (owner, name);
)sql";

// Services a session starts with (docs/api.md, "Services"): a JSON column like setup.
constexpr std::string_view kV8SessionServices = R"sql(
ALTER TABLE sessions ADD COLUMN services TEXT NOT NULL DEFAULT '[]';
)sql";

// Per-port settings of a session (docs/api.md, "Ports"): a table of their own, since the
// session row is rewritten whole on every state change.
constexpr std::string_view kV9SessionPorts = R"sql(
CREATE TABLE session_ports (
  session_id TEXT NOT NULL,
  port INTEGER NOT NULL,
  public INTEGER NOT NULL DEFAULT 0,
  updated_at BIGINT NOT NULL,
  PRIMARY KEY (session_id, port)
);
)sql";

// Workshops and their participants (docs/workshops.md). A participant's identity is a user of
// role participant (users), their environment a session (sessions.workshop_id, and labels
// hutch.workshop / hutch.participant); this table ties the three together. A user is the
// participant of one workshop at most. Names of workshops are unique per owner among those that
// have not ended, like sessions'. Emails are unique within a workshop when given.
constexpr std::string_view kV10Workshops = R"sql(
CREATE TABLE workshops (
  id TEXT PRIMARY KEY,
  name TEXT NOT NULL,
  owner TEXT NOT NULL,
  title TEXT NOT NULL,
  template_name TEXT NOT NULL,
  series TEXT NOT NULL,
  start_at BIGINT NOT NULL,
  end_at BIGINT NOT NULL,
  max_participants BIGINT NOT NULL,
  pre_provision_seconds BIGINT NOT NULL,
  on_end TEXT NOT NULL,
  state TEXT NOT NULL,
  reason TEXT NOT NULL,
  created_at BIGINT NOT NULL,
  ended_at BIGINT
);

CREATE INDEX workshops_owner_created ON workshops (owner, created_at, id);
CREATE INDEX workshops_state ON workshops (state);
CREATE UNIQUE INDEX workshops_live_name ON workshops (owner, name)
  WHERE state NOT IN ('completed', 'cancelled');

CREATE TABLE workshop_participants (
  id TEXT PRIMARY KEY,
  workshop_id TEXT NOT NULL,
  name TEXT NOT NULL,
  email TEXT NOT NULL,
  user_id TEXT NOT NULL,
  session_id TEXT NOT NULL,
  created_at BIGINT NOT NULL
);

CREATE INDEX workshop_participants_workshop ON workshop_participants (workshop_id, created_at, id);
CREATE UNIQUE INDEX workshop_participants_user ON workshop_participants (user_id);
CREATE UNIQUE INDEX workshop_participants_email ON workshop_participants (workshop_id, email)
  WHERE email <> '';

-- A participant's access link is a secret stored by hash (like tokens); empty: none issued or
-- revoked.
ALTER TABLE workshop_participants ADD COLUMN access_hash TEXT NOT NULL DEFAULT '';
CREATE INDEX workshop_participants_access ON workshop_participants (access_hash)
  WHERE access_hash <> '';

-- Join codes: `used` of `slots` taken, each join in the transaction that adds its participant.
CREATE TABLE workshop_codes (
  code TEXT PRIMARY KEY,
  workshop_id TEXT NOT NULL,
  slots BIGINT NOT NULL,
  used BIGINT NOT NULL,
  one_time INTEGER NOT NULL,
  email_domains TEXT NOT NULL,
  expires_at BIGINT,
  created_at BIGINT NOT NULL,
  revoked INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX workshop_codes_workshop ON workshop_codes (workshop_id, created_at);
)sql";

// Workshop notices (docs/workshops.md, "Notices"): each workshop's texts, one row per notice
// sent (its key: "ready:<session>", "warning:<end>", "ending", "message:<id>"), inserted in the
// transaction that appends the notice's events, so a notice is sent once across restarts; and
// named cursors over the event log for tailers such as the notice mailer.
constexpr std::string_view kV11WorkshopNotices = R"sql(
ALTER TABLE workshops ADD COLUMN notices TEXT NOT NULL DEFAULT '{}';

CREATE TABLE workshop_notices (
  notice_key TEXT PRIMARY KEY,
  workshop_id TEXT NOT NULL,
  created_at BIGINT NOT NULL
);
CREATE INDEX workshop_notices_workshop ON workshop_notices (workshop_id);

CREATE TABLE event_cursors (
  name TEXT PRIMARY KEY,
  last_event_id BIGINT NOT NULL
);
)sql";

// Sessions' titles (docs/api.md, "Finding sessions"): free text beside the name, matched by
// GET /v1/sessions?q= together with the name. Existing sessions get the empty title.
constexpr std::string_view kV12SessionTitles = R"sql(
ALTER TABLE sessions ADD COLUMN title TEXT NOT NULL DEFAULT '';
)sql";

// Who else may start from a template (docs/server.md, "Sharing templates"): shared_with is a
// JSON list of grants.
constexpr std::string_view kV13TemplateSharing = R"sql(
ALTER TABLE templates ADD COLUMN visibility TEXT NOT NULL DEFAULT 'private';
ALTER TABLE templates ADD COLUMN shared_with TEXT NOT NULL DEFAULT '[]';
)sql";

// Agents (docs/agents.md): registered per owner, unique by name.
constexpr std::string_view kV14Agents = R"sql(
CREATE TABLE agents (
  id TEXT PRIMARY KEY,
  name TEXT NOT NULL,
  owner TEXT NOT NULL,
  description TEXT NOT NULL,
  command TEXT NOT NULL,
  config TEXT NOT NULL,
  env TEXT NOT NULL,
  guardrails TEXT NOT NULL,
  created_at BIGINT NOT NULL,
  updated_at BIGINT NOT NULL
);
CREATE UNIQUE INDEX agents_owner_name ON agents (owner, name);
)sql";

// Sessions with agents: their agents (a JSON snapshot of the definitions), waiting timeout and
// agent_state; their messages (ids increase across the server, so `after=` is a cursor); and
// which agent acknowledged which message (at-least-once delivery: what is not acknowledged is
// delivered again).
constexpr std::string_view kV15Messages = R"sql(
CREATE TABLE session_agents (
  session_id TEXT PRIMARY KEY,
  agents TEXT NOT NULL,
  waiting_timeout_seconds BIGINT NOT NULL,
  agent_state TEXT NOT NULL,
  agent_reason TEXT NOT NULL,
  updated_at BIGINT NOT NULL
);

CREATE TABLE messages (
  id INTEGER PRIMARY KEY AUTOINCREMENT,
  session_id TEXT NOT NULL,
  role TEXT NOT NULL,
  sender TEXT NOT NULL,
  recipient TEXT NOT NULL,
  content TEXT NOT NULL,
  metadata TEXT NOT NULL,
  reply_to BIGINT NOT NULL,
  created_at BIGINT NOT NULL
);
CREATE INDEX messages_session ON messages (session_id, id);

CREATE TABLE message_acks (
  message_id BIGINT NOT NULL,
  session_id TEXT NOT NULL,
  agent TEXT NOT NULL,
  acked_at BIGINT NOT NULL,
  PRIMARY KEY (message_id, agent)
);
CREATE INDEX message_acks_session ON message_acks (session_id);
)sql";

// Attached shells (docs/attach.md): the targets an admin registered by service name, and the
// attach sessions, each a JSON body beside the columns lists filter on; audit records get a
// detail (the line entered in a shell).
constexpr std::string_view kV16Attach = R"sql(
CREATE TABLE attach_targets (
  service_name TEXT PRIMARY KEY,
  spec TEXT NOT NULL,
  created_at BIGINT NOT NULL
);

CREATE TABLE attach_sessions (
  id TEXT PRIMARY KEY,
  owner TEXT NOT NULL,
  service_name TEXT NOT NULL,
  state TEXT NOT NULL,
  created_at BIGINT NOT NULL,
  body TEXT NOT NULL
);
CREATE INDEX attach_sessions_service_state ON attach_sessions (service_name, state);
CREATE INDEX attach_sessions_owner ON attach_sessions (owner, created_at);

ALTER TABLE audit ADD COLUMN detail TEXT NOT NULL DEFAULT '';
)sql";

// Scenarios and courses (issue 19, docs/workshops.md): stored documents by kind, owner and name;
// and the plan a workshop runs, copied from them when it is made.
constexpr std::string_view kV20Courseware = R"sql(
CREATE TABLE courseware (
  kind TEXT NOT NULL,
  owner TEXT NOT NULL,
  name TEXT NOT NULL,
  body TEXT NOT NULL,
  created_at BIGINT NOT NULL,
  updated_at BIGINT NOT NULL,
  PRIMARY KEY (kind, owner, name)
);

CREATE TABLE workshop_plans (
  workshop_id TEXT PRIMARY KEY,
  body TEXT NOT NULL
);
)sql";

// Participants' progress through a workshop's plan: one row each, rewritten by compare and set
// on its version, so two checks racing cannot lose an attempt.
constexpr std::string_view kV21Progress = R"sql(
CREATE TABLE participant_progress (
  participant_id TEXT PRIMARY KEY,
  workshop_id TEXT NOT NULL,
  version BIGINT NOT NULL,
  body TEXT NOT NULL,
  updated_at BIGINT NOT NULL
);
CREATE INDEX participant_progress_workshop ON participant_progress (workshop_id);
)sql";

// Usage metering (docs/usage.md): each session's meter (the last reading it recorded, and what
// reports group by, kept after the session is purged) and the amounts it measured, summed per
// session and time bucket. A reading and its amounts are written in one transaction.
constexpr std::string_view kV22Usage = R"sql(
CREATE TABLE usage_meters (
  session_id TEXT PRIMARY KEY,
  owner TEXT NOT NULL,
  workshop_id TEXT NOT NULL,
  labels TEXT NOT NULL,
  instance TEXT NOT NULL,
  cpu_seconds DOUBLE PRECISION NOT NULL,
  network_bytes BIGINT NOT NULL,
  memory_bytes BIGINT NOT NULL,
  disk_bytes BIGINT NOT NULL,
  at BIGINT NOT NULL
);
CREATE INDEX usage_meters_owner ON usage_meters (owner);
CREATE INDEX usage_meters_workshop ON usage_meters (workshop_id);

CREATE TABLE usage_buckets (
  session_id TEXT NOT NULL,
  bucket_start BIGINT NOT NULL,
  cpu_seconds DOUBLE PRECISION NOT NULL,
  memory_gib_hours DOUBLE PRECISION NOT NULL,
  disk_gib_hours DOUBLE PRECISION NOT NULL,
  network_bytes BIGINT NOT NULL,
  wall_seconds DOUBLE PRECISION NOT NULL,
  PRIMARY KEY (session_id, bucket_start)
);
CREATE INDEX usage_buckets_start ON usage_buckets (bucket_start);
)sql";

// Persistent state (docs/agents.md, "Persistent state"): a volume made for a session's
// `persist: true` names that session, whose record owns it; retained_until is the end of the
// retention window that a soft delete starts (NULL while the record is not deleted). What a
// record owns is never removed by anything but hutch's own retention sweep (gc honours it).
constexpr std::string_view kV17PersistentState = R"sql(
ALTER TABLE volumes ADD COLUMN session_id TEXT NOT NULL DEFAULT '';
ALTER TABLE volumes ADD COLUMN retained_until BIGINT;
CREATE INDEX volumes_session ON volumes (session_id);
)sql";

// Batch sessions (docs/api.md, "Batch sessions"): what a session runs on its own (type,
// command, run_image_cmd, and a batch's result) as JSON, and the sessions it waits for.
constexpr std::string_view kV18Batch = R"sql(
ALTER TABLE sessions ADD COLUMN run_spec TEXT NOT NULL DEFAULT '{}';
ALTER TABLE sessions ADD COLUMN depends_on TEXT NOT NULL DEFAULT '[]';
)sql";

// Activity (issue 19, docs/workshops.md "Activity"): typed records of what happened in sessions.
// Ids increase across the server (the `after=` cursor and the SSE id). owner and workshop_id are
// the session's, copied, so the owner-scoped filters need no join and outlive a purge. origin
// numbers a line that came from inside a session ("<agent instance>:<seq>"): a line collected
// twice (a server that died before it moved its cursor) is stored once. Kept for the server's
// activity.retention_days, then purged by time.
constexpr std::string_view kV19Activity = R"sql(
CREATE TABLE activity (
  id INTEGER PRIMARY KEY AUTOINCREMENT,
  at BIGINT NOT NULL,
  type TEXT NOT NULL,
  session_id TEXT NOT NULL,
  owner TEXT NOT NULL,
  workshop_id TEXT NOT NULL,
  actor TEXT NOT NULL,
  command TEXT NOT NULL,
  exit_code BIGINT,
  data TEXT NOT NULL,
  origin TEXT NOT NULL
);
CREATE INDEX activity_session ON activity (session_id, id);
CREATE INDEX activity_owner ON activity (owner, id);
CREATE INDEX activity_workshop ON activity (workshop_id, id);
CREATE INDEX activity_at ON activity (at);
CREATE UNIQUE INDEX activity_origin ON activity (session_id, origin) WHERE origin <> '';
)sql";

// The abuse report (docs/api.md, "Abuse report"): per session and kind of limit, what its
// sandboxes ran into, kept when the sandbox and the session are gone.
constexpr std::string_view kV23Abuse = R"sql(
CREATE TABLE abuse_counters (
  session_id TEXT NOT NULL,
  kind TEXT NOT NULL,
  owner TEXT NOT NULL,
  instance TEXT NOT NULL,
  reading BIGINT NOT NULL,
  count BIGINT NOT NULL,
  first_seen BIGINT NOT NULL,
  last_seen BIGINT NOT NULL,
  PRIMARY KEY (session_id, kind)
);
CREATE INDEX abuse_counters_last_seen ON abuse_counters (last_seen);
)sql";

constexpr std::array kSqlite = {
    Migration{1, "sessions and their status history", kV1Sessions},
    Migration{2, "API tokens", kV2Tokens},
    Migration{3, "users with quotas, and the audit trail", kV3UsersAudit},
    Migration{4, "events, webhooks and their delivery log", kV4EventsWebhooks},
    Migration{5, "sessions by parent, for lineage", kV5Lineage},
    Migration{6, "tasks, and sessions by image", kV6Tasks},
    Migration{7, "templates, volumes, and sessions' volumes and setup", kV7TemplatesVolumes},
    Migration{8, "sessions' services", kV8SessionServices},
    Migration{9, "sessions' port settings", kV9SessionPorts},
    Migration{10, "workshops, their participants and join codes", kV10Workshops},
    Migration{11, "workshop notices, and named event cursors", kV11WorkshopNotices},
    Migration{12, "sessions' titles", kV12SessionTitles},
    Migration{13, "templates' visibility and grants", kV13TemplateSharing},
    Migration{14, "agents", kV14Agents},
    Migration{15, "sessions' agents, messages and their acknowledgements", kV15Messages},
    Migration{16, "attach targets and attach sessions, and audit details", kV16Attach},
    Migration{17, "volumes owned by a session's record, and their retention", kV17PersistentState},
    Migration{18, "sessions' run spec (batch sessions) and dependencies", kV18Batch},
    Migration{19, "activity records", kV19Activity},
    Migration{20, "scenarios, courses and workshops' plans", kV20Courseware},
    Migration{21, "participants' progress", kV21Progress},
    Migration{22, "usage meters and metered usage", kV22Usage},
    Migration{23, "abuse report counters", kV23Abuse},
};

}  // namespace

std::span<const Migration> SqliteMigrations() { return kSqlite; }

std::string ToDialect(std::string_view sqlite_sql, Dialect dialect) {
  std::string sql(sqlite_sql);
  if (dialect == Dialect::kSqlite) return sql;
  // Word-bounded, case as written here: the migrations spell their types in upper case.
  static const std::regex kAutoKey(R"(\bINTEGER PRIMARY KEY AUTOINCREMENT\b)");
  static const std::regex kReal(R"(\bREAL\b)");
  sql = std::regex_replace(sql, kAutoKey, "BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY");
  sql = std::regex_replace(sql, kReal, "DOUBLE PRECISION");
  return sql;
}

const std::vector<Migration>& MigrationsFor(Dialect dialect) {
  // The translated text must outlive every Migration that views it: both live here for good.
  struct Translated {
    std::vector<std::string> sql;
    std::vector<Migration> list;
  };
  static const Translated* const kPostgres = [] {
    auto* t = new Translated;
    for (const Migration& m : kSqlite) t->sql.push_back(ToDialect(m.sql, Dialect::kPostgres));
    for (size_t i = 0; i < kSqlite.size(); ++i)
      t->list.push_back(Migration{kSqlite[i].version, kSqlite[i].description, t->sql[i]});
    return t;
  }();
  static const std::vector<Migration> kSqliteList(kSqlite.begin(), kSqlite.end());
  return dialect == Dialect::kSqlite ? kSqliteList : kPostgres->list;
}

int LatestSchemaVersion() { return kSqlite.back().version; }

}  // namespace hutch::store
