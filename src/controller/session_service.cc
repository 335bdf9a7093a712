#include "controller/session_service.h"

#include "agent/client.h"

#include <algorithm>
#include <cstdint>

#include <fmt/format.h>

#include "common/ids.h"
#include "common/log.h"
#include "common/scope_guard.h"
#include "controller/admission_claim.h"
#include "controller/metrics.h"
#include "core/state_machine.h"

namespace hutch::controller {

using core::Reason;
using core::Session;
using core::SessionState;

namespace {

const std::string kSystemActor = "system";

// States in which a sandbox exists and holds server capacity.
bool HoldsCapacity(SessionState s) {
  return s == SessionState::kProvisioning || s == SessionState::kRunning ||
         s == SessionState::kPaused || s == SessionState::kStopping ||
         s == SessionState::kTerminating;
}

std::chrono::milliseconds Seconds(int64_t s) { return std::chrono::seconds(s); }

std::string Describe(const Capacity& c) {
  std::string out;
  if (c.max_sessions) out += fmt::format("{} sessions", *c.max_sessions);
  if (c.max_cpus) out += fmt::format("{}{} cpus", out.empty() ? "" : ", ", *c.max_cpus);
  if (c.max_memory_mb)
    out += fmt::format("{}{} MB memory", out.empty() ? "" : ", ", *c.max_memory_mb);
  return out;
}

// Destroys a sandbox whose session is going to error anyway: a failure cannot change that
// outcome, but it may leave a sandbox behind (the orphan sweep's job then), so it is logged.
void DestroyOrLog(drivers::Driver& driver, const Session& s, std::string_view when) {
  if (Status st = driver.Destroy(s.id, s.driver_state); !st.ok())
    LOG_SESSION_WARN(s.id, "destroy {}: {}", when, st.ToString());
}

}  // namespace

SessionService::SessionService(store::Store& store, drivers::Driver& driver, ServiceOptions options,
                               std::function<void(std::function<void()>)> run_async, EmitFn emit)
    : store_(store),
      driver_(driver),
      options_(std::move(options)),
      run_async_(std::move(run_async)),
      emit_(std::move(emit)),
      admission_(options_.capacity) {}

void SessionService::Emit(const Session& s, std::string_view type, Reason reason,
                          const std::string& actor, json::object data) {
  LOG_SESSION_INFO(s.id, "event {} ({})", type, core::ToString(reason));
  if (emit_) emit_(s, type, reason, actor, data);
}

Status SessionService::Move(Session& s, SessionState to, Reason reason, const std::string& actor,
                            std::string message) {
  Session next = s;
  SessionState expected = s.state;
  ASSIGN_OR_RETURN(core::HistoryEntry entry,
                   core::Transition(next, to, reason, actor, Now(), std::move(message)));
  RETURN_IF_ERROR(store_.TransitionSession(next, expected, entry));
  metric::Transitions()
      .With({std::string(core::ToString(to)), std::string(core::ToString(reason))})
      .Inc();
  if (notify_) notify_();
  LOG_SESSION_INFO(s.id, "{} -> {} ({})", core::ToString(expected), core::ToString(to),
                   core::ToString(reason));
  s = std::move(next);
  if (!HoldsCapacity(to) && to != SessionState::kPending) {
    admission_.Release(s.id);
    std::lock_guard lock(mu_);
    activity_.erase(s.id);
    warned_.erase(warned_.lower_bound({s.id, INT64_MIN}), warned_.lower_bound({s.id, INT64_MAX}));
  }
  return Status::Ok();
}

void SessionService::Touch(const std::string& id) {
  std::lock_guard lock(mu_);
  activity_[id].last = Now();
}

void SessionService::Decorate(Session& s) {
  if (s.state == SessionState::kPending) s.queue_position = admission_.Position(s.id);
  std::lock_guard lock(mu_);
  auto it = activity_.find(s.id);
  if (it == activity_.end()) return;
  s.activity = it->second.busy > 0 ? "busy" : "idle";
  const std::optional<TimePoint>& last = it->second.last;
  if (last && (!s.last_activity_at || *last > *s.last_activity_at)) s.last_activity_at = last;
}

void SessionService::RunOnce(const std::string& id, std::function<void()> action) {
  {
    std::lock_guard lock(mu_);
    if (!in_flight_.insert(id).second) return;
  }
  run_async_([this, id, action = std::move(action)] {
    action();
    std::lock_guard lock(mu_);
    in_flight_.erase(id);
  });
}

std::optional<TimePoint> SessionService::LatestEnd(const Session& s) {
  std::optional<int64_t> limit;
  if (options_.max_lifetime_seconds > 0) limit = options_.max_lifetime_seconds;
  if (Result<store::User> u = store_.GetUser(s.owner); u.ok()) {
    store::QuotaLimits q = options_.default_quota.Over(u->quota);
    if (q.max_ttl_seconds && (!limit || *q.max_ttl_seconds < *limit)) limit = q.max_ttl_seconds;
  }
  if (!limit) return std::nullopt;
  return s.created_at + Seconds(*limit);
}

// --- create, provision, terminate ------------------------------------------------------------

Result<Session> SessionService::Create(const core::Principal& who,
                                       const core::CreateSessionRequest& req) {
  metrics::ScopedTimer timer(metric::CreateSeconds());
  Result<Session> s = CreateFromRequest(who, req);
  metric::Creates().With({s.ok() ? "ok" : "error"}).Inc();
  return s;
}

Result<Session> SessionService::CreateFromRequest(const core::Principal& who,
                                                  const core::CreateSessionRequest& req) {
  if (!req.from_checkpoint) return CreateSession(who, req, "", nullptr);
  const std::string& ref = *req.from_checkpoint;
  size_t slash = ref.find('/');
  if (slash == std::string::npos)
    return InvalidArgument(fmt::format("from_checkpoint '{}' is not <session>/<name>", ref));
  if (req.start_at) return InvalidArgument("from_checkpoint cannot be combined with start_at");
  ASSIGN_OR_RETURN(Session source, store_.GetSession(who.OwnerFilter(), ref.substr(0, slash)));
  std::string name = ref.substr(slash + 1);
  ASSIGN_OR_RETURN(drivers::CheckpointInfo info, driver_.GetCheckpoint(source.id, name));
  core::CreateSessionRequest child = req;
  child.resources.disk_mb = info.size_bytes >> 20;
  // The source's volume attachments come along unless the request names its own (409 for a
  // read-write one the source, or another session, still holds).
  if (!req.volumes_given) {
    child.volumes = source.volumes;
    for (auto& m : child.volumes) m.volume = m.volume_id;
  }
  LayerSource from{source.id, name};
  return CreateSession(who, child, source.id, &from);
}

Result<Session> SessionService::CreateSession(const core::Principal& who,
                                              const core::CreateSessionRequest& req,
                                              const std::string& parent_id, const LayerSource* from,
                                              const PersistPlan* persist) {
  // An image that does not exist is the request's error, not a session in state error.
  if (!req.image.empty() && req.image != "host")
    RETURN_IF_ERROR(driver_.GetImage(req.image).status());
  std::vector<std::string> depends_on = req.depends_on;
  if (!depends_on.empty()) {
    if (req.start_at) return InvalidArgument("depends_on cannot be combined with start_at");
    if (from) return InvalidArgument("depends_on cannot be combined with from_checkpoint");
    RETURN_IF_ERROR(ResolveDependencies(who, &depends_on));
  }
  Session s;
  s.id = NewId("ses");
  // An unnamed session is named after its id, so it always has a valid hostname.
  s.name = req.name ? *req.name : "ses-" + s.id.substr(4);
  s.owner = who.user_id;
  s.state =
      req.start_at && *req.start_at > Now() ? SessionState::kScheduled : SessionState::kPending;
  s.reason = ReasonOf(who);
  s.workshop_id = req.workshop_id;
  s.image = req.image;
  s.resources = req.resources;
  s.network = req.network;
  s.env = req.env;
  s.labels = req.labels;
  s.metadata_json = req.metadata_json;
  s.title = req.title;
  s.created_at = Now();
  s.start_at = req.start_at;
  s.ttl_seconds = req.ttl_seconds;
  if (req.ttl_seconds)
    s.expires_at =
        std::max(s.created_at, s.start_at.value_or(s.created_at)) + Seconds(*req.ttl_seconds);
  s.idle_timeout_seconds = req.idle_timeout_seconds;
  s.on_idle = req.on_idle;
  s.node = driver_.Node();
  s.parent_id = parent_id;
  s.run.type = req.run.type;
  s.run.command = req.run.command;
  s.run.run_image_cmd = req.run.run_image_cmd;
  s.depends_on = std::move(depends_on);
  // A batch session that waits for others is pending for them, not for capacity: the controller
  // admits it once they completed (batch.cc).
  const bool waits_for_dependencies = !s.depends_on.empty();
  if (waits_for_dependencies) s.reason = Reason::kDependency;
  if (s.expires_at) {
    if (std::optional<TimePoint> latest = LatestEnd(s); latest && *s.expires_at > *latest)
      return ResourceExhausted(
          fmt::format("ttl_seconds {} would end the session after its maximum lifetime ({})",
                      *req.ttl_seconds, FormatTime(*latest)));
  }

  // Claim capacity before the record exists, so wait=false can fail fast without a trace. Until
  // the record holds it, every return releases it (the claim's destructor).
  bool now = s.state == SessionState::kPending && !waits_for_dependencies;
  AdmissionClaim claim =
      now ? AdmissionClaim::Try(admission_, s.id, s.resources) : AdmissionClaim();
  const bool claimed = static_cast<bool>(claim);
  // A queued session is provisioned later from its record alone, which does not name the
  // checkpoint: sessions from a checkpoint start now or not at all.
  if (now && !claimed && from)
    return ResourceExhausted(fmt::format(
        "the server is at capacity ({}); a session from a checkpoint cannot wait in the queue, "
        "retry later",
        Describe(options_.capacity)));
  if (now && !claimed && !req.wait)
    return ResourceExhausted(fmt::format(
        "the server is at capacity ({}); retry later, or create with wait=true to queue",
        Describe(options_.capacity)));

  ASSIGN_OR_RETURN(store::User owner, store_.GetUser(who.user_id));
  store::QuotaLimits quota = options_.default_quota.Over(owner.quota);
  s.template_name = req.template_name.value_or("");
  s.setup = req.setup;
  s.services = req.services;
  if (req.run.run_image_cmd) {
    ASSIGN_OR_RETURN(core::ServiceSpec image_cmd, ImageCmdService(req));
    s.services.push_back(std::move(image_cmd));
  }
  s.volumes = req.volumes;
  std::unique_lock<std::mutex> volumes_lock(volumes_mu_, std::defer_lock);
  if (!s.volumes.empty()) {
    volumes_lock.lock();
    Status resolved = ResolveVolumes(s.owner, &s.volumes);
    if (!resolved.ok()) return resolved;
  }
  std::function<void()> undo_persist;
  if (req.persist || persist) {
    Result<std::function<void()>> undo = PreparePersist(s, persist ? *persist : PersistPlan{});
    if (!undo.ok()) return undo.status();
    undo_persist = std::move(*undo);
  }
  Status inserted =
      store_.CreateSessionWithinQuota(s, core::InitialEntry(s, who.Actor(), s.created_at), quota);
  if (volumes_lock.owns_lock()) volumes_lock.unlock();
  if (!inserted.ok()) {
    if (undo_persist) undo_persist();
    return inserted;
  }
  claim.Keep();  // the session holds it now: released when it leaves the states that do
  if (notify_) notify_();
  Touch(s.id);
  if (!now) return s;  // scheduled, or waiting for dependencies: the controller starts it
  if (!claimed) {
    admission_.Enqueue(s.id, s.resources);
    s.queue_position = admission_.Position(s.id);
    LOG_SESSION_INFO(s.id, "queued for capacity at position {}", s.queue_position);
    return s;
  }
  std::optional<LayerSource> layer;
  if (from) layer = *from;
  if (!req.wait) {
    RunOnce(s.id, [this, s, layer, actor = who.Actor(), reason = ReasonOf(who)]() mutable {
      Status st = Provision(s, actor, reason, false, layer ? &*layer : nullptr);
      if (!st.ok()) LOG_SESSION_WARN(s.id, "background provisioning failed: {}", st.ToString());
    });
    return s;
  }
  RETURN_IF_ERROR(Provision(s, who.Actor(), ReasonOf(who), false, from));
  return s;
}

Result<core::ServiceSpec> SessionService::ImageCmdService(const core::CreateSessionRequest& req) {
  if (req.image.empty() || req.image == "host")
    return InvalidArgument("run_image_cmd needs an image with a command; image host has none");
  ASSIGN_OR_RETURN(drivers::ImageInfo image, driver_.GetImage(req.image));
  if (image.cmd.empty())
    return InvalidArgument(fmt::format(
        "run_image_cmd: image {} has no command (no Entrypoint or Cmd in its config)", req.image));
  for (const auto& svc : req.services)
    if (svc.name == kImageCmdService)
      return InvalidArgument(
          fmt::format("run_image_cmd starts the service {}; services already has one of that name",
                      kImageCmdService));
  // A supervised service rather than a bare process: it restarts when it fails, shows in
  // GET …/services with its output, and the session is running only once it runs.
  core::ServiceSpec spec;
  spec.name = kImageCmdService;
  spec.exec.argv = image.cmd;  // no cwd: the agent starts it in the image's workdir
  spec.restart = "on-failure";
  return spec;
}

Status SessionService::Provision(Session& s, const std::string& actor, Reason reason,
                                 bool reuse_layer, const LayerSource* from) {
  RETURN_IF_ERROR(Move(s, SessionState::kProvisioning, reason, actor));
  drivers::SandboxSpec spec;
  spec.session_id = s.id;
  spec.hostname = s.name;
  spec.image = s.image;
  spec.resources = s.resources;
  spec.env = s.env;
  spec.reuse_layer = reuse_layer;
  spec.network = s.network;
  if (from) {
    spec.layer_from_session = from->session_id;
    spec.layer_from_name = from->name;
  }
  for (const auto& v : s.volumes) spec.volumes.push_back({v.volume_id, v.path, v.read_only});
  Result<std::string> state = driver_.Create(spec);
  if (!state.ok()) {
    Status failed = state.status().WithContext(fmt::format("start sandbox for {}", s.id));
    Status st = Move(s, SessionState::kError, Reason::kError, kSystemActor, failed.message());
    if (!st.ok()) LOG_SESSION_ERROR(s.id, "record error state: {}", st.ToString());
    return failed;
  }
  s.driver_state = std::move(*state);
  // Setup runs on a fresh layer only: a stopped session starting again (and a restored or
  // forked one) has its effects in its files already. Services start with every sandbox: no
  // process outlives one.
  Status ready = Status::Ok();
  if (!reuse_layer && !from && !s.setup.empty()) ready = RunSetup(s);
  if (ready.ok() && !s.services.empty()) ready = StartServices(s);
  if (!ready.ok()) {
    // The sandbox goes: error holds no sandbox, and a restart provisions and sets up anew.
    Status destroyed = driver_.Destroy(s.id, s.driver_state);
    if (!destroyed.ok()) LOG_SESSION_ERROR(s.id, "destroy: {}", destroyed.ToString());
    Status st = Move(s, SessionState::kError, Reason::kError, kSystemActor, ready.message());
    if (!st.ok()) LOG_SESSION_ERROR(s.id, "record error state: {}", st.ToString());
    return ready;
  }
  Status st = Move(s, SessionState::kRunning, reason, actor);
  if (!st.ok()) {
    // Someone deleted the session while it was being provisioned: the sandbox must not outlive
    // its record.
    Status destroyed = driver_.Destroy(s.id, s.driver_state);
    if (!destroyed.ok()) LOG_SESSION_ERROR(s.id, "destroy: {}", destroyed.ToString());
    return st;
  }
  Touch(s.id);
  if (sandbox_edge_) sandbox_edge_(s, SandboxEdge::kUp);
  return Status::Ok();
}

Status SessionService::Admit(Session& s, bool wait, const std::string& actor, Reason reason,
                             bool reuse_layer) {
  if (!admission_.TryClaim(s.id, s.resources)) {
    if (!wait)
      return ResourceExhausted(
          fmt::format("the server is at capacity ({}); retry later", Describe(options_.capacity)));
    if (s.state != SessionState::kPending)
      RETURN_IF_ERROR(Move(s, SessionState::kPending, reason, actor));
    admission_.Enqueue(s.id, s.resources);
    s.queue_position = admission_.Position(s.id);
    return Status::Ok();
  }
  Status st = Provision(s, actor, reason, reuse_layer);
  if (!st.ok() && s.state != SessionState::kError) admission_.Release(s.id);
  return st;
}

Status SessionService::Terminate(Session& s, const std::string& actor, Reason reason) {
  switch (s.state) {
    case SessionState::kScheduled:
    case SessionState::kPending:
      return Move(s, SessionState::kCancelled, reason, actor);
    case SessionState::kTerminated:
    case SessionState::kCancelled:
      return Status::Ok();
    case SessionState::kStopping:
      // stopping can only end in stopped or error; the sandbox is torn down below either way.
      RETURN_IF_ERROR(Move(s, SessionState::kError, reason, actor, "deleted while stopping"));
      break;
    default:
      break;
  }
  if (sandbox_edge_ && (s.state == SessionState::kRunning || s.state == SessionState::kPaused))
    sandbox_edge_(s, SandboxEdge::kDown);
  if (s.state != SessionState::kTerminating)
    RETURN_IF_ERROR(Move(s, SessionState::kTerminating, reason, actor));
  Status destroyed = driver_.Destroy(s.id, s.driver_state);
  if (!destroyed.ok()) {
    // Stay in terminating: the record says what is still to be cleaned and the controller
    // retries.
    return destroyed.WithContext(fmt::format("tear down sandbox of {}", s.id));
  }
  // Its checkpoints go with it: sessions made from them have copies of their own.
  if (Status st = driver_.DeleteCheckpoints(s.id); !st.ok())
    LOG_SESSION_WARN(s.id, "remove checkpoints: {}", st.ToString());
  return Move(s, SessionState::kTerminated, reason, actor);
}

Status SessionService::StopSandbox(Session& s, const std::string& actor, Reason reason) {
  RETURN_IF_ERROR(driver_.CheckStoppable());
  if (sandbox_edge_) sandbox_edge_(s, SandboxEdge::kDown);
  RETURN_IF_ERROR(Move(s, SessionState::kStopping, reason, actor));
  Status stopped = driver_.Stop(s.id, s.driver_state);
  if (!stopped.ok()) {
    Status st = Move(s, SessionState::kError, Reason::kError, kSystemActor,
                     "stop failed: " + stopped.message());
    if (!st.ok()) LOG_SESSION_WARN(s.id, "record error state: {}", st.ToString());
    return stopped;
  }
  return Move(s, SessionState::kStopped, reason, actor);
}

// --- reads ------------------------------------------------------------------------------------

Result<Session> SessionService::Get(const core::Principal& who, std::string_view id_or_name) {
  ASSIGN_OR_RETURN(Session s, store_.GetSession(who.OwnerFilter(), id_or_name));
  Decorate(s);
  return s;
}

Result<store::SessionPage> SessionService::List(const core::Principal& who,
                                                store::SessionFilter filter) {
  if (!who.admin) filter.owner = who.user_id;
  ASSIGN_OR_RETURN(store::SessionPage page, store_.ListSessions(filter));
  for (Session& s : page.sessions) Decorate(s);
  return page;
}

Result<std::vector<core::HistoryEntry>> SessionService::History(const core::Principal& who,
                                                                std::string_view id_or_name) {
  ASSIGN_OR_RETURN(Session s, store_.GetSession(who.OwnerFilter(), id_or_name));
  return store_.GetHistory(s.id);
}

// --- delete and exec --------------------------------------------------------------------------

Result<Session> SessionService::Delete(const core::Principal& who, std::string_view id_or_name,
                                       bool purge) {
  ASSIGN_OR_RETURN(Session s, store_.GetSession(who.OwnerFilter(), id_or_name));
  bool by_admin = !who.acting_admin.empty() || (who.admin && who.user_id != s.owner);
  Reason reason = !who.workshop_id.empty() ? Reason::kWorkshop
                  : by_admin               ? Reason::kAdmin
                                           : Reason::kUser;
  // While this delete runs, the controller must not take the session for a stuck teardown.
  bool claimed;
  {
    std::lock_guard lock(mu_);
    claimed = in_flight_.insert(s.id).second;
  }
  ScopeGuard unclaim([&] {
    if (!claimed) return;
    std::lock_guard lock(mu_);
    in_flight_.erase(s.id);
  });
  // A concurrent transition (another delete, a background create) shows up as a conflict on the
  // compare-and-set; re-read and go on from the state it left.
  for (int attempt = 0;; ++attempt) {
    Status st = Terminate(s, who.Actor(), reason);
    if (st.ok()) break;
    if (st.code() != Code::kConflict || attempt >= 5) return st;
    ASSIGN_OR_RETURN(s, store_.GetSession("", s.id));
  }
  if (purge) {
    RETURN_IF_ERROR(store_.PurgeSession(s.id));
    DropPersistVolume(s);
    return s;
  }
  if (!s.deleted_at) {
    s.deleted_at = Now();
    RETURN_IF_ERROR(store_.UpdateSession(s));
    StartRetention(s);
  }
  return s;
}

Result<core::ExecResult> SessionService::Exec(const core::Principal& who,
                                              std::string_view id_or_name,
                                              const core::ExecRequest& req,
                                              core::Session* touched) {
  ASSIGN_OR_RETURN(Session s, store_.GetSession(who.OwnerFilter(), id_or_name));
  if (touched) *touched = s;
  if (s.state != SessionState::kRunning)
    return Conflict(fmt::format("session {} is {}; exec needs a running session", s.id,
                                core::ToString(s.state)));
  // A command started through the API keeps the session busy while it runs: never idle.
  {
    std::lock_guard lock(mu_);
    Activity& a = activity_[s.id];
    a.last = Now();
    a.busy += 1;
  }
  Result<core::ExecResult> result = Unavailable("exec did not run");
  {
    metrics::ScopedTimer timer(metric::ExecSeconds());
    result = driver_.Exec(s.id, s.driver_state, req);
  }
  {
    std::lock_guard lock(mu_);
    auto it = activity_.find(s.id);
    if (it != activity_.end()) {
      it->second.last = Now();
      it->second.busy -= 1;
    }
  }
  if (!result.ok()) {
    if (std::optional<std::string> died = AgentFailed(s, result.status()))
      return Unavailable(*died);
  }
  return result;
}

bool SessionService::BackgroundProcessesRun(const Session& s) {
  auto transport = driver_.ConnectAgent(s.id, s.driver_state);
  if (!transport.ok()) return false;
  auto client = agent::AgentClient::Connect(**transport, 2000);
  if (!client.ok()) return false;
  auto list = client->Call(agent::MessageType::kProcessList, {}, 2000);
  if (!list.ok()) return false;
  for (const auto& p : *list) {
    if (p.running) return true;
  }
  return false;
}

Result<SessionService::AgentTarget> SessionService::Agent(const core::Principal& who,
                                                          std::string_view id_or_name,
                                                          core::Session* touched) {
  ASSIGN_OR_RETURN(Session s, store_.GetSession(who.OwnerFilter(), id_or_name));
  if (touched) *touched = s;
  if (s.state != SessionState::kRunning)
    return Conflict(fmt::format("session {} is {}; this needs a running session", s.id,
                                core::ToString(s.state)));
  return TargetOf(std::move(s));
}

Result<SessionService::AgentTarget> SessionService::AgentOfLiveSession(const core::Principal& who,
                                                                       std::string_view id_or_name,
                                                                       core::Session* touched) {
  ASSIGN_OR_RETURN(Session s, store_.GetSession(who.OwnerFilter(), id_or_name));
  if (touched) *touched = s;
  if (s.state != SessionState::kRunning && s.state != SessionState::kPaused)
    return Conflict(fmt::format("session {} is {}; this needs a running or paused session", s.id,
                                core::ToString(s.state)));
  return TargetOf(std::move(s));
}

Result<SessionService::AgentTarget> SessionService::TargetOf(Session s) {
  ASSIGN_OR_RETURN(std::shared_ptr<const agent::Transport> transport,
                   driver_.ConnectAgent(s.id, s.driver_state));
  Touch(s.id);
  return AgentTarget{std::move(s), std::move(transport)};
}

std::shared_ptr<void> SessionService::Busy(const std::string& session_id) {
  {
    std::lock_guard lock(mu_);
    Activity& a = activity_[session_id];
    a.last = Now();
    a.busy += 1;
  }
  // The deleter is the release; the pointer itself carries nothing.
  return std::shared_ptr<void>(nullptr, [this, session_id](void*) {
    std::lock_guard lock(mu_);
    auto it = activity_.find(session_id);
    if (it != activity_.end()) {
      it->second.last = Now();
      if (it->second.busy > 0) it->second.busy -= 1;
    }
  });
}

// --- lifecycle --------------------------------------------------------------------------------

Result<Session> SessionService::Pause(const core::Principal& who, std::string_view id_or_name) {
  return PauseAs(who.OwnerFilter(), id_or_name, ReasonOf(who), who.Actor());
}

Result<Session> SessionService::PauseForIdle(std::string_view id) {
  return PauseAs("", id, Reason::kIdle, kSystemActor);
}

Result<Session> SessionService::ResumeForMessage(std::string_view id, const std::string& actor) {
  return ResumeAs("", id, Reason::kUser, actor);
}

Result<Session> SessionService::PauseAs(const std::string& owner, std::string_view id_or_name,
                                        Reason reason, const std::string& actor) {
  ASSIGN_OR_RETURN(Session s, store_.GetSession(owner, id_or_name));
  if (s.state == SessionState::kPaused) return s;
  if (s.state != SessionState::kRunning)
    return Conflict(fmt::format("session {} is {}; only a running session can be paused", s.id,
                                core::ToString(s.state)));
  RETURN_IF_ERROR(driver_.Pause(s.id, s.driver_state));
  Status st = Move(s, SessionState::kPaused, reason, actor);
  if (!st.ok()) {
    // Two pauses at once both freeze and one of them wins the store write: the loser must not
    // thaw what the winner recorded as paused. Thaw only when the session is not paused now.
    if (st.code() == Code::kConflict) {
      Result<Session> now = store_.GetSession("", s.id);
      if (now.ok() && now->state == SessionState::kPaused) return *now;
    }
    (void)driver_.Resume(s.id, s.driver_state);
    return st;
  }
  Touch(s.id);
  return s;
}

Result<Session> SessionService::Resume(const core::Principal& who, std::string_view id_or_name) {
  return ResumeAs(who.OwnerFilter(), id_or_name, ReasonOf(who), who.Actor());
}

Result<Session> SessionService::ResumeAs(const std::string& owner, std::string_view id_or_name,
                                         Reason reason, const std::string& actor) {
  ASSIGN_OR_RETURN(Session s, store_.GetSession(owner, id_or_name));
  if (s.state == SessionState::kRunning) return s;
  if (s.state != SessionState::kPaused)
    return Conflict(fmt::format("session {} is {}; only a paused session can be resumed", s.id,
                                core::ToString(s.state)));
  std::optional<TimePoint> paused_at = s.paused_at;
  RETURN_IF_ERROR(driver_.Resume(s.id, s.driver_state));
  // The end clock stood still while paused: push the end by the time spent paused.
  if (options_.pause_stops_clock && s.expires_at && paused_at)
    s.expires_at = *s.expires_at + (Now() - *paused_at);
  Status st = Move(s, SessionState::kRunning, reason, actor);
  if (!st.ok()) {
    // Two resumes at once: the one that lost the store write finds the session running, which
    // is what it was asked for.
    if (st.code() == Code::kConflict) {
      Result<Session> now = store_.GetSession("", s.id);
      if (now.ok() && now->state == SessionState::kRunning) return *now;
    }
    return st;
  }
  Touch(s.id);
  return s;
}

Result<Session> SessionService::Stop(const core::Principal& who, std::string_view id_or_name) {
  ASSIGN_OR_RETURN(Session s, store_.GetSession(who.OwnerFilter(), id_or_name));
  if (s.state == SessionState::kStopped) return s;
  if (s.state != SessionState::kRunning && s.state != SessionState::kPaused)
    return Conflict(fmt::format("session {} is {}; only a running or paused session can stop", s.id,
                                core::ToString(s.state)));
  RETURN_IF_ERROR(StopSandbox(s, who.Actor(), ReasonOf(who)));
  return s;
}

Result<Session> SessionService::Start(const core::Principal& who, std::string_view id_or_name) {
  ASSIGN_OR_RETURN(Session s, store_.GetSession(who.OwnerFilter(), id_or_name));
  if (s.state == SessionState::kRunning) return s;
  if (s.state != SessionState::kStopped && s.state != SessionState::kError)
    return Conflict(
        fmt::format("session {} is {}; only a stopped session (or one in error) can "
                    "start",
                    s.id, core::ToString(s.state)));
  // A stopped session keeps its files; one in error may have lost them (then it starts fresh).
  bool reuse = s.state == SessionState::kStopped;
  if (s.state == SessionState::kError) DestroyOrLog(driver_, s, "before a start from error");
  RETURN_IF_ERROR(Admit(s, /*wait=*/false, who.Actor(), ReasonOf(who), reuse));
  return s;
}

Result<Session> SessionService::Restart(const core::Principal& who, std::string_view id_or_name) {
  ASSIGN_OR_RETURN(Session s, store_.GetSession(who.OwnerFilter(), id_or_name));
  if (s.state == SessionState::kRunning || s.state == SessionState::kPaused)
    RETURN_IF_ERROR(StopSandbox(s, who.Actor(), ReasonOf(who)));
  return Start(who, s.id);
}

Result<Session> SessionService::Modify(const core::Principal& who, std::string_view id_or_name,
                                       const std::function<Status(Session&)>& change) {
  ASSIGN_OR_RETURN(Session s, store_.GetSession(who.OwnerFilter(), id_or_name));
  for (int attempt = 0;; ++attempt) {
    if (core::IsFinal(s.state))
      return Conflict(fmt::format("session {} is {}", s.id, core::ToString(s.state)));
    Session next = s;
    RETURN_IF_ERROR(change(next));
    Status st = store_.UpdateSessionIf(next, s.state);
    if (st.ok()) {
      Touch(next.id);
      Decorate(next);
      return next;
    }
    if (st.code() != Code::kConflict || attempt >= 5) return st;
    ASSIGN_OR_RETURN(s, store_.GetSession("", s.id));
  }
}

Result<Session> SessionService::Keepalive(const core::Principal& who, std::string_view id_or_name) {
  ASSIGN_OR_RETURN(Session s, Modify(who, id_or_name, [&](Session& s) -> Status {
                     if (!s.expires_at) return Status::Ok();  // nothing to push
                     int64_t window = s.ttl_seconds.value_or(options_.keepalive_seconds);
                     TimePoint end = std::max(*s.expires_at, Now() + Seconds(window));
                     if (std::optional<TimePoint> latest = LatestEnd(s); latest)
                       end = std::min(end, std::max(*latest, *s.expires_at));
                     s.expires_at = end;
                     s.last_activity_at = Now();
                     return Status::Ok();
                   }));
  Emit(s, "session.keepalive", ReasonOf(who), who.Actor(),
       json::object{{"expires_at", s.expires_at ? FormatTime(*s.expires_at) : ""}});
  return s;
}

Result<Session> SessionService::Extend(const core::Principal& who, std::string_view id_or_name,
                                       int64_t seconds) {
  ASSIGN_OR_RETURN(Session s, Modify(who, id_or_name, [&](Session& s) -> Status {
                     TimePoint base = s.expires_at.value_or(Now());
                     TimePoint end = base + Seconds(seconds);
                     if (std::optional<TimePoint> latest = LatestEnd(s); latest && end > *latest)
                       return ResourceExhausted(fmt::format(
                           "extending by {} s would end the session at {}, after its maximum "
                           "lifetime ({})",
                           seconds, FormatTime(end), FormatTime(*latest)));
                     s.expires_at = end;
                     return Status::Ok();
                   }));
  Emit(s, "session.extended", ReasonOf(who), who.Actor(),
       json::object{{"seconds", seconds}, {"expires_at", FormatTime(*s.expires_at)}});
  return s;
}

Result<Session> SessionService::SetTimeout(const core::Principal& who, std::string_view id_or_name,
                                           int64_t seconds) {
  ASSIGN_OR_RETURN(Session s, Modify(who, id_or_name, [&](Session& s) -> Status {
                     TimePoint end = Now() + Seconds(seconds);
                     if (std::optional<TimePoint> latest = LatestEnd(s); latest && end > *latest)
                       return ResourceExhausted(fmt::format(
                           "a timeout of {} s would end the session at {}, after its maximum "
                           "lifetime ({})",
                           seconds, FormatTime(end), FormatTime(*latest)));
                     s.expires_at = end;
                     return Status::Ok();
                   }));
  Emit(s, "session.extended", ReasonOf(who), who.Actor(),
       json::object{{"timeout_seconds", seconds}, {"expires_at", FormatTime(*s.expires_at)}});
  return s;
}

Result<Session> SessionService::Update(const core::Principal& who, std::string_view id_or_name,
                                       const SessionPatch& patch) {
  if (patch.resources) {
    ASSIGN_OR_RETURN(Session resized, Resize(who, id_or_name, *patch.resources));
    SessionPatch rest = patch;
    rest.resources.reset();
    if (!rest.name && !rest.title && !rest.labels && !rest.metadata_json && !rest.ttl_seconds &&
        !rest.idle_timeout_seconds && !rest.on_idle)
      return resized;
    return Update(who, resized.id, rest);
  }
  ASSIGN_OR_RETURN(
      Session s, Modify(who, id_or_name, [&](Session& s) -> Status {
        if (patch.name) s.name = *patch.name;
        if (patch.title) s.title = *patch.title;
        if (patch.labels) s.labels = *patch.labels;
        if (patch.metadata_json) s.metadata_json = *patch.metadata_json;
        if (patch.idle_timeout_seconds) s.idle_timeout_seconds = *patch.idle_timeout_seconds;
        if (patch.on_idle) s.on_idle = *patch.on_idle;
        if (patch.ttl_seconds) {
          s.ttl_seconds = *patch.ttl_seconds;
          if (!s.ttl_seconds) {
            s.expires_at.reset();
          } else {
            TimePoint from = s.started_at.value_or(s.created_at);
            s.expires_at = from + Seconds(*s.ttl_seconds);
            if (std::optional<TimePoint> latest = LatestEnd(s); latest && *s.expires_at > *latest)
              return ResourceExhausted(
                  fmt::format("ttl_seconds {} would end the session after its maximum lifetime "
                              "({})",
                              *s.ttl_seconds, FormatTime(*latest)));
          }
        }
        return Status::Ok();
      }));
  Emit(s, "session.updated", ReasonOf(who), who.Actor());
  return s;
}

// --- the controller's side ----------------------------------------------------------------------

Result<core::SandboxStats> SessionService::Stats(const core::Principal& who,
                                                 std::string_view id_or_name) {
  ASSIGN_OR_RETURN(Session s, store_.GetSession(who.OwnerFilter(), id_or_name));
  if (s.state != SessionState::kRunning && s.state != SessionState::kPaused)
    return Conflict(fmt::format("session {} is {}; stats need a running or paused session", s.id,
                                core::ToString(s.state)));
  Result<core::SandboxStats> stats = driver_.Stats(s.id, s.driver_state);
  if (!stats.ok()) {
    // The session exists; its sandbox does not (any more): not a 404.
    if (stats.status().code() == Code::kNotFound)
      return Unavailable(
          fmt::format("the sandbox of {} is gone: {}", s.id, stats.status().message()));
    return stats.status();
  }
  stats->disk_limit_bytes = s.resources.disk_mb * (int64_t{1} << 20);
  return stats;
}

void SessionService::ReconcileAtStart() {
  store::SessionFilter filter;
  filter.limit = 1000;
  filter.live_only = true;
  filter.include_deleted = true;
  std::vector<Session> pending;
  for (;;) {
    Result<store::SessionPage> page = store_.ListSessions(filter);
    if (!page.ok()) {
      LOG_ERROR("reconcile at start: {}", page.status().ToString());
      return;
    }
    for (Session& s : page->sessions) {
      Status st;
      switch (s.state) {
        case SessionState::kPending:
          // One waiting for its dependencies is the controller's to admit (batch.cc), also when
          // it was queued for capacity before the restart.
          if (s.reason != Reason::kDependency) pending.push_back(s);
          break;
        case SessionState::kProvisioning:
          DestroyOrLog(driver_, s, "at start (was provisioning)");
          st = Move(s, SessionState::kError, Reason::kServerRestart, kSystemActor,
                    "the server restarted while the session was being changed");
          break;
        case SessionState::kStopping:
          // The user asked for a stop, and a stop keeps the writable layer: finish it rather
          // than destroy the files (Stop is idempotent; a failure ends in error as it would
          // have before the restart).
          admission_.TryClaim(s.id, s.resources, /*force=*/true);
          if (Status stopped = driver_.Stop(s.id, s.driver_state); stopped.ok()) {
            st = Move(s, SessionState::kStopped, Reason::kServerRestart, kSystemActor);
          } else {
            DestroyOrLog(driver_, s, "at start (the stop failed)");
            st = Move(s, SessionState::kError, Reason::kServerRestart, kSystemActor,
                      "the server restarted while the session was stopping, and the stop "
                      "failed: " +
                          stopped.message());
          }
          break;
        case SessionState::kRunning:
          admission_.TryClaim(s.id, s.resources, /*force=*/true);
          // A kill -9 between Pause's freeze and its store write leaves a frozen sandbox that
          // the store calls running; a frozen agent cannot answer the ping below, and the
          // session would be destroyed. The record is the truth: thaw (a no-op when not frozen).
          if (Status thawed = driver_.Resume(s.id, s.driver_state); !thawed.ok())
            LOG_SESSION_WARN(s.id, "thaw at start: {}", thawed.ToString());
          if (!driver_.IsAlive(s.id, s.driver_state)) {
            DestroyOrLog(driver_, s, "at start (the sandbox is not alive)");
            st = Move(s, SessionState::kError, Reason::kServerRestart, kSystemActor,
                      "the sandbox did not survive the server restart");
          } else {
            Touch(s.id);
            LOG_SESSION_INFO(s.id, "reattached to running sandbox");
          }
          break;
        case SessionState::kPaused:
          // A frozen agent cannot answer a ping; its sandbox is checked when it resumes.
          admission_.TryClaim(s.id, s.resources, /*force=*/true);
          // A kill -9 between Resume's thaw and its store write leaves the sandbox running
          // while the store says paused: freeze it again (a no-op when frozen).
          if (Status frozen = driver_.Pause(s.id, s.driver_state); !frozen.ok())
            LOG_SESSION_WARN(s.id, "freeze at start: {}", frozen.ToString());
          break;
        case SessionState::kTerminating:
          admission_.TryClaim(s.id, s.resources, /*force=*/true);
          st = Terminate(s, kSystemActor, s.reason);
          break;
        default:
          break;
      }
      if (!st.ok()) LOG_SESSION_WARN(s.id, "reconcile at start: {}", st.ToString());
    }
    if (page->next_page_token.empty()) break;
    filter.page_token = page->next_page_token;
  }
  // Pages come newest first; the queue is oldest first.
  std::sort(pending.begin(), pending.end(), [](const Session& a, const Session& b) {
    return a.created_at != b.created_at ? a.created_at < b.created_at : a.id < b.id;
  });
  for (const Session& s : pending) admission_.Enqueue(s.id, s.resources);
}

void SessionService::Tick() {
  AdmitQueued();
  const TimePoint now = Now();
  store::SessionFilter filter;
  filter.limit = 1000;
  filter.live_only = true;
  filter.include_deleted = true;
  const bool check_agents = AgentCheckDue();
  for (;;) {
    Result<store::SessionPage> page = store_.ListSessions(filter);
    if (!page.ok()) {
      LOG_WARN("controller: list sessions: {}", page.status().ToString());
      return;
    }
    for (Session& s : page->sessions) {
      Decorate(s);
      // First: a dead sandbox's session is the teardown's, not its timers'.
      if (check_agents) WatchAgent(s);
      TendBatch(s);
      TendSession(s, now);
      PersistActivity(s);
    }
    if (page->next_page_token.empty()) break;
    filter.page_token = page->next_page_token;
  }
  SweepRetention();
}

void SessionService::AdmitQueued() {
  // Queued sessions that fit now, in order.
  for (const std::string& id : admission_.AdmitReady()) {
    RunOnce(id, [this, id] {
      Result<Session> s = store_.GetSession("", id);
      if (!s.ok() || s->state != SessionState::kPending) {
        admission_.Release(id);
        return;
      }
      Status st = Provision(*s, kSystemActor, Reason::kSchedule, false);
      if (!st.ok()) LOG_SESSION_WARN(id, "provision from the queue: {}", st.ToString());
    });
  }
}

void SessionService::TendSession(const Session& s, TimePoint now) {
  switch (s.state) {
    case SessionState::kScheduled:
      if (s.start_at && *s.start_at - Seconds(options_.prewarm_seconds) <= now) {
        RunOnce(s.id, [this, s = Session(s)]() mutable {
          Status st = Move(s, SessionState::kPending, Reason::kSchedule, kSystemActor);
          if (st.ok()) st = Admit(s, /*wait=*/true, kSystemActor, Reason::kSchedule, false);
          if (!st.ok()) LOG_SESSION_WARN(s.id, "scheduled start: {}", st.ToString());
        });
      }
      break;
    case SessionState::kRunning:
    case SessionState::kPaused:
      if (!TendClock(s, now)) TendIdle(s, now);
      break;
    case SessionState::kTerminating:
      RunOnce(s.id, [this, s = Session(s)]() mutable {
        Status st = Terminate(s, kSystemActor, s.reason);
        if (!st.ok()) LOG_SESSION_WARN(s.id, "retry teardown: {}", st.ToString());
      });
      break;
    default:
      break;
  }
}

bool SessionService::TendClock(const Session& s, TimePoint now) {
  std::optional<TimePoint> end = s.expires_at;
  if (s.state == SessionState::kPaused && options_.pause_stops_clock) end.reset();
  if (options_.max_lifetime_seconds > 0) {
    TimePoint cap = s.created_at + Seconds(options_.max_lifetime_seconds);
    if (!end || cap < *end) end = cap;
  }
  if (!end) return false;
  if (now >= *end) {
    RunOnce(s.id, [this, s = Session(s)]() mutable {
      Status st = Terminate(s, kSystemActor, Reason::kTtl);
      if (!st.ok()) LOG_SESSION_WARN(s.id, "expire: {}", st.ToString());
    });
    return true;
  }
  int64_t left = std::chrono::duration_cast<std::chrono::seconds>(*end - now).count();
  for (int64_t w : options_.expiry_warnings_seconds) {
    if (left <= w && FirstWarning(s.id, w))
      Emit(s, "session.expiring", Reason::kTtl, kSystemActor,
           json::object{{"seconds_left", left}, {"expires_at", FormatTime(*end)}});
  }
  return false;
}

bool SessionService::FirstWarning(const std::string& id, int64_t which) {
  std::lock_guard lock(mu_);
  return warned_.insert({id, which}).second;
}

void SessionService::ForgetWarning(const std::string& id, int64_t which) {
  std::lock_guard lock(mu_);
  warned_.erase({id, which});
}

void SessionService::TendIdle(const Session& s, TimePoint now) {
  if (s.state != SessionState::kRunning || !s.idle_timeout_seconds || s.activity == "busy") return;
  TimePoint last = s.last_activity_at.value_or(s.started_at.value_or(s.created_at));
  int64_t idle = std::chrono::duration_cast<std::chrono::seconds>(now - last).count();
  int64_t timeout = *s.idle_timeout_seconds;
  // A background process that still runs is activity (DESIGN.md §3). Asked only when the idle
  // clock is far enough along to matter, so a tick costs nothing for busy sessions.
  if (idle * 2 >= timeout && BackgroundProcessesRun(s)) {
    Touch(s.id);
    return;
  }
  auto warn_idle = [&] {
    if (FirstWarning(s.id, kIdleWarning))
      Emit(s, "session.idle_warning", Reason::kIdle, kSystemActor,
           json::object{{"idle_seconds", idle},
                        {"on_idle", s.on_idle},
                        {"seconds_left", std::max<int64_t>(0, timeout - idle)}});
  };
  if (idle >= timeout) {
    // A short timeout (or a late tick) may skip the warning window: the warning still comes
    // first.
    warn_idle();
    RunOnce(s.id, [this, s]() mutable { ActOnIdle(s); });
  } else if (idle >= timeout - std::min<int64_t>(60, timeout / 2)) {
    warn_idle();
  } else {
    ForgetWarning(s.id, kIdleWarning);
  }
}

void SessionService::ActOnIdle(Session s) {
  Status st;
  if (s.on_idle == "pause") {
    st = driver_.Pause(s.id, s.driver_state);
    if (st.ok()) st = Move(s, SessionState::kPaused, Reason::kIdle, kSystemActor);
  } else if (s.on_idle == "terminate") {
    st = Terminate(s, kSystemActor, Reason::kIdle);
  } else {
    st = StopSandbox(s, kSystemActor, Reason::kIdle);
  }
  if (!st.ok()) LOG_SESSION_WARN(s.id, "idle {}: {}", s.on_idle, st.ToString());
  ForgetWarning(s.id, kIdleWarning);
}

void SessionService::PersistActivity(const Session& s) {
  // Activity is kept in memory on the hot path and written here, at most once a tick.
  if (s.state != SessionState::kRunning) return;
  std::optional<TimePoint> tracked;
  {
    std::lock_guard lock(mu_);
    auto it = activity_.find(s.id);
    if (it != activity_.end() && it->second.last != it->second.persisted) tracked = it->second.last;
  }
  if (!tracked) return;
  Result<Session> fresh = store_.GetSession("", s.id);
  if (!fresh.ok() || fresh->state != s.state) return;
  fresh->last_activity_at = *tracked;
  if (store_.UpdateSessionIf(*fresh, s.state).ok()) {
    std::lock_guard lock(mu_);
    // Not activity_[id]: an entry erased meanwhile (the session ended) stays erased.
    auto it = activity_.find(s.id);
    if (it != activity_.end()) it->second.persisted = tracked;
  }
}

bool SessionService::InFlight(const std::string& id) {
  std::lock_guard lock(mu_);
  return in_flight_.count(id) > 0;
}

}  // namespace hutch::controller
