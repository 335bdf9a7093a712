// SessionService carries out what the API and the controller ask of sessions: it validates
// against the state machine, records every transition in the store, admits sessions against the
// server's capacity, tracks activity, and drives the sandbox through the Driver.
// All methods block (store and driver I/O): call them off network threads. Thread-safe.
#pragma once

#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <set>
#include <string>
#include <vector>

#include "common/status.h"
#include "controller/admission.h"
#include "core/exec.h"
#include "core/principal.h"
#include "core/session.h"
#include "core/session_json.h"
#include "core/stats.h"
#include "drivers/driver.h"
#include "store/store.h"

namespace hutch::controller {

// Why a change asked for by `who` happens: for a workshop (Principal::workshop_id), or by the
// user.
inline core::Reason ReasonOf(const core::Principal& who) {
  return who.workshop_id.empty() ? core::Reason::kUser : core::Reason::kWorkshop;
}

struct ServiceOptions {
  core::Resources default_resources;
  core::ResourceCeiling ceiling;
  int64_t max_exec_timeout_seconds = 24 * 3600;
  // Applies to every user; a user's own limits override it field by field.
  store::QuotaLimits default_quota;
  // What all sandboxes that hold capacity may use together; more waits in `pending`.
  Capacity capacity;
  // Whether a paused session's end clock stops (HobbyFarm's pause) or keeps running.
  bool pause_stops_clock = true;
  // No session lives longer than this after its creation, whatever extends it; 0: no cap.
  int64_t max_lifetime_seconds = 0;
  // How far a keepalive pushes expires_at for a session without ttl_seconds.
  int64_t keepalive_seconds = 3600;
  // Seconds before expiry at which a session.expiring event is emitted.
  std::vector<int64_t> expiry_warnings_seconds = {1800, 300};
  // Provisioning of a scheduled session begins this long before start_at.
  int64_t prewarm_seconds = 0;
  // How long a soft-deleted session's record keeps its persistent volume (restore works until
  // then; docs/agents.md, "Persistent state").
  int64_t persist_retention_seconds = 7 * 24 * 3600;
  // The size of the volume `persist: true` makes.
  int64_t persist_size_mb = 1024;
};

// The changeable fields of PATCH /v1/sessions/{id}; unset ones stay.
struct SessionPatch {
  std::optional<std::string> name;
  std::optional<std::string> title;  // "" clears it
  std::optional<std::map<std::string, std::string>> labels;
  std::optional<std::string> metadata_json;
  std::optional<std::optional<int64_t>> ttl_seconds;  // a null clears it
  std::optional<std::optional<int64_t>> idle_timeout_seconds;
  std::optional<std::string> on_idle;
  // New resources (the fields given; the others stay): applied to a running or paused
  // session's sandbox at once, stored for a stopped one's next start (resize.cc).
  std::optional<json::object> resources;
};

// The sessions a fork made, and what they all started from.
struct Lineage {
  std::vector<core::Session> ancestors;  // parent first, then its parent, …
  std::vector<core::Session> children;   // oldest first
  // Batch sessions: what it waits for and what waits for it (GetDependencies).
  std::vector<core::Session> depends_on;
  std::vector<core::Session> dependents;
};

// GET …/dependencies: what a batch session waits for and what waits for it.
struct Dependencies {
  core::Session session;
  std::vector<core::Session> depends_on;  // in the order the session lists them
  std::vector<std::string> missing;       // ids of those purged since
  std::vector<core::Session> dependents;  // oldest first
};

// POST …/fork: `count` sessions named `<name_prefix>-1` … that start from the source's files
// now; each is created from `base` (the source's settings with the request's overrides).
struct ForkRequest {
  int count = 1;
  std::string name_prefix;
  core::CreateSessionRequest base;
};

// POST …/remix: a new session from `base` (the parent's settings with the request's) on a copy
// of the parent's files (when it still has a sandbox) and of its persistent volume.
struct RemixRequest {
  core::CreateSessionRequest base;
};

// A volume as the API shows it: the record, what it holds (when the driver can tell) and the
// live sessions it is attached to.
struct VolumeInfo {
  store::Volume volume;
  std::optional<drivers::VolumeUsage> usage;
  std::vector<core::Session> sessions;
};

class ActivityLog;

class SessionService {
 public:
  // `run_async` runs work off the caller's thread (background provisioning, controller actions).
  // `emit` records a notable action that is not a transition (keepalive, extended, warnings);
  // transitions are recorded by the store with the history.
  using EmitFn =
      std::function<void(const core::Session& s, std::string_view type, core::Reason reason,
                         const std::string& actor, const json::object& data)>;
  SessionService(store::Store& store, drivers::Driver& driver, ServiceOptions options,
                 std::function<void(std::function<void()>)> run_async, EmitFn emit = nullptr);

  const ServiceOptions& options() const { return options_; }
  // Called after every committed change that recorded an event (transitions, creates), to wake
  // event streams and webhook deliveries. Set before use.
  void OnCommitted(std::function<void()> notify) { notify_ = std::move(notify); }
  // Called with the session just after its sandbox starts running (kUp) and just before it is
  // stopped or torn down (kDown), on the caller's thread (the usage meter reads it then:
  // controller/metering.h). Set before use.
  enum class SandboxEdge { kUp, kDown };
  void OnSandboxEdge(std::function<void(const core::Session&, SandboxEdge)> edge) {
    sandbox_edge_ = std::move(edge);
  }

  // Where what users do in sessions is recorded (controller/activity_log.h); null: nowhere.
  // Set before use.
  void SetActivityLog(ActivityLog* log) { activity_log_ = log; }
  ActivityLog* activity_log() const { return activity_log_; }

  // Creates the session. When it fits the server's capacity: with wait, returns once it is
  // running (or failed: then it is kept in state error and the error is returned); without,
  // returns it pending and provisions in the background. When it doesn't fit: with wait it is
  // queued (pending, queue_position set); without, resource_exhausted.
  Result<core::Session> Create(const core::Principal& who, const core::CreateSessionRequest& req);
  Result<core::Session> Get(const core::Principal& who, std::string_view id_or_name);
  Result<store::SessionPage> List(const core::Principal& who, store::SessionFilter filter);
  // Terminates (if live), soft-deletes, and with `purge` removes the record as well.
  Result<core::Session> Delete(const core::Principal& who, std::string_view id_or_name, bool purge);
  // `touched`, when given, receives the session the command ran in (for the audit trail).
  Result<core::ExecResult> Exec(const core::Principal& who, std::string_view id_or_name,
                                const core::ExecRequest& req, core::Session* touched = nullptr);
  // Streaming operations (WebSocket and SSE exec, background processes, run) hold their own
  // agent connection: this resolves the running session (conflict otherwise) and the transport
  // its driver hands out to reach the agent, and counts as activity. `touched` as for Exec.
  struct AgentTarget {
    core::Session session;
    std::shared_ptr<const agent::Transport> transport;
  };
  Result<AgentTarget> Agent(const core::Principal& who, std::string_view id_or_name,
                            core::Session* touched = nullptr);
  // As Agent, for a running or paused session: a paused sandbox's agent keeps answering while
  // its processes stand still (the driver freezes only them), so its files are served as a
  // running one's. Nothing it is asked may start a process: that would stand still too.
  Result<AgentTarget> AgentOfLiveSession(const core::Principal& who, std::string_view id_or_name,
                                         core::Session* touched = nullptr);
  // The session is busy (a command runs) while the returned token lives; releasing it counts
  // as activity.
  std::shared_ptr<void> Busy(const std::string& session_id);
  // Bytes moved on a stream of the session: activity.
  void NoteActivity(const std::string& session_id) { Touch(session_id); }
  // At most max_bytes of the session's log (the agent's and setup's output) from `offset`, in
  // any state but purged (logs.cc): through the agent while the session runs, else (and when
  // the agent cannot answer) from the driver. not_found when the sandbox has none.
  Result<core::LogChunk> ReadLog(const core::Principal& who, std::string_view id_or_name,
                                 uint64_t offset, uint32_t max_bytes,
                                 core::Session* touched = nullptr);
  // Reports an agent that stopped answering (an `unavailable` from a call or a stream): when
  // the sandbox is gone, it is torn down in the background, the session moves to error, and
  // the answer is the error it gets ("sandbox_died: agent exited (signal 9)"), for the client
  // of the stream that broke; nullopt when the agent lives (sandbox_faults.cc). Blocks (it may
  // ask the agent).
  std::optional<std::string> AgentFailed(const core::Session& s, const Status& status);
  // The same without blocking: only what the driver tells without a round trip (for the
  // network threads' relays).
  std::optional<std::string> NoticeDeadSandbox(const core::Session& s);

  Result<std::vector<core::HistoryEntry>> History(const core::Principal& who,
                                                  std::string_view id_or_name);
  // What a running (or paused) session's sandbox uses now; `conflict` in other states.
  Result<core::SandboxStats> Stats(const core::Principal& who, std::string_view id_or_name);

  // Lifecycle (POST …/pause, resume, stop, start, restart).
  Result<core::Session> Pause(const core::Principal& who, std::string_view id_or_name);
  Result<core::Session> Resume(const core::Principal& who, std::string_view id_or_name);
  // For sessions with agents (agents.h): IDLE pauses the session with reason idle, and a message
  // resumes it (reason user, the sender as actor).
  Result<core::Session> PauseForIdle(std::string_view id);
  Result<core::Session> ResumeForMessage(std::string_view id, const std::string& actor);
  Result<core::Session> Stop(const core::Principal& who, std::string_view id_or_name);
  Result<core::Session> Start(const core::Principal& who, std::string_view id_or_name);
  Result<core::Session> Restart(const core::Principal& who, std::string_view id_or_name);
  // Time: keepalive pushes expires_at to now + the keep-alive window (ttl_seconds, else the
  // server's); extend adds `seconds`; timeout sets it to now + `seconds`. None may pass the
  // user's max_ttl_seconds or the server's max_lifetime (resource_exhausted).
  Result<core::Session> Keepalive(const core::Principal& who, std::string_view id_or_name);
  Result<core::Session> Extend(const core::Principal& who, std::string_view id_or_name,
                               int64_t seconds);
  Result<core::Session> SetTimeout(const core::Principal& who, std::string_view id_or_name,
                                   int64_t seconds);
  Result<core::Session> Update(const core::Principal& who, std::string_view id_or_name,
                               const SessionPatch& patch);

  // Checkpoints of the session's files (docs/server.md, "Checkpoints"). One checkpoint,
  // restore or fork runs at a time per session: another gets `conflict`.
  Result<drivers::CheckpointInfo> CreateCheckpoint(const core::Principal& who,
                                                   std::string_view id_or_name,
                                                   const std::string& name);
  Result<std::vector<drivers::CheckpointInfo>> ListCheckpoints(const core::Principal& who,
                                                               std::string_view id_or_name);
  Result<drivers::CheckpointInfo> GetCheckpoint(const core::Principal& who,
                                                std::string_view id_or_name,
                                                const std::string& name);
  Status DeleteCheckpoint(const core::Principal& who, std::string_view id_or_name,
                          const std::string& name);
  // The session's files become the checkpoint's; a running or paused one is stopped and started
  // again on them (its processes start afresh), a stopped one stays stopped.
  Result<core::Session> RestoreCheckpoint(const core::Principal& who, std::string_view id_or_name,
                                          const std::string& name);
  // All or nothing: when one child cannot be made, those made are deleted again.
  Result<std::vector<core::Session>> Fork(const core::Principal& who, std::string_view id_or_name,
                                          const ForkRequest& req);
  Result<Lineage> GetLineage(const core::Principal& who, std::string_view id_or_name);

  // At server start: counts what holds capacity, re-queues pending sessions, reattaches to
  // running sandboxes, and marks those whose sandbox died `error` (reason server_restart).
  void ReconcileAtStart();
  // One pass of the controller: admits queued sessions, starts scheduled ones, ends expired
  // ones, applies idle policies, emits warnings, persists activity, retries stuck teardowns.
  void Tick();
  // Whether a background action (create, start, stop, delete …) runs for the session now: its
  // sandbox is being made or unmade, so the garbage collector (gc.h) leaves it alone.
  bool InFlight(const std::string& id);

  // --- batch sessions (batch.cc) ---
  Result<Dependencies> GetDependencies(const core::Principal& who, std::string_view id_or_name);

  // --- templates (templates.cc) ---
  // The create request of POST /v1/sessions: with `template`, that template of the caller's
  // (not_found otherwise) under the body's fields (core::MergeTemplate).
  Result<core::CreateSessionRequest> ParseCreateRequest(const core::Principal& who,
                                                        const json::object& body);
  // Stores a SessionTemplate document as the caller's, replacing one of the same name; `name`
  // (PUT /v1/templates/{name}) must match metadata.name when given. Whether it was new.
  Result<std::pair<core::SessionTemplate, bool>> ApplyTemplate(const core::Principal& who,
                                                               std::string_view document,
                                                               std::string_view name);
  // The caller's templates (an admin's list shows every user's).
  Result<std::vector<core::SessionTemplate>> ListTemplates(const core::Principal& who);
  Result<core::SessionTemplate> GetTemplate(const core::Principal& who, std::string_view name);
  Status DeleteTemplate(const core::Principal& who, std::string_view name);

  // --- volumes (volumes.cc) ---
  Result<VolumeInfo> CreateVolume(const core::Principal& who, const std::string& name,
                                  int64_t size_mb);
  Result<std::vector<VolumeInfo>> ListVolumes(const core::Principal& who);
  Result<VolumeInfo> GetVolume(const core::Principal& who, std::string_view id_or_name);
  // conflict while a live session (stopped ones too) has it attached.
  Result<VolumeInfo> DeleteVolume(const core::Principal& who, std::string_view id_or_name);

  // --- persistent state, restore and remix (persist.cc; docs/agents.md) ---
  // The volume the session's record owns (persist: true), or not_found.
  Result<store::Volume> PersistVolumeOf(const core::Session& s);
  // A new session on the persistent volume of an ended (soft-deleted or not) session, within
  // its retention window; with the old one's settings and name, parent_id = the old one.
  Result<core::Session> RestoreSession(const core::Principal& who, std::string_view id_or_name);
  // A new session on a copy of the parent's files (running, paused or stopped) and persistent
  // volume (also of an ended parent whose volume is retained); parent_id = the parent.
  Result<core::Session> Remix(const core::Principal& who, std::string_view id_or_name,
                              const RemixRequest& req);
  // Removes the volumes whose retention window ended (and no live session uses); how many.
  int SweepRetention();

  // --- ports (ports.cc): who reaches a session's port besides its owner ---
  // The ports with settings, by port. `touched` as for Exec.
  Result<std::vector<store::PortSetting>> ListPorts(const core::Principal& who,
                                                    std::string_view id_or_name,
                                                    core::Session* touched = nullptr);
  // Marks the port public (anyone who reaches the server reaches it) or private again.
  // conflict when the session has ended.
  Result<store::PortSetting> SetPortPublic(const core::Principal& who, std::string_view id_or_name,
                                           uint16_t port, bool is_public,
                                           core::Session* touched = nullptr);
  // Whether `port` of the session with id `session_id` (an id, never a name: the caller is
  // nobody in particular) is public. False when there is no such session or setting.
  bool PortIsPublic(std::string_view session_id, uint16_t port);

 private:
  // Unset times are "never", not a default TimePoint (1970, which the store would keep).
  struct Activity {
    std::optional<TimePoint> last;
    int busy = 0;                        // commands started through the API that are still running
    std::optional<TimePoint> persisted;  // `last` as the store has it
  };

  // The parts of Tick: queued sessions that fit now; one live session's timers (a scheduled
  // start, the end of its time and its warnings, its idle policy); its activity written back.
  void AdmitQueued();
  void TendSession(const core::Session& s, TimePoint now);
  // Sandboxes that died behind hutch's back (sandbox_faults.cc): whether this tick asks the
  // driver about the agents (once a second); asking about one; tearing a dead one down and
  // moving its session to error.
  bool AgentCheckDue();
  void WatchAgent(const core::Session& s);
  void SandboxDied(const core::Session& seen, const std::string& cause);
  // Whether the session's time is up (its end is under way).
  bool TendClock(const core::Session& s, TimePoint now);
  void TendIdle(const core::Session& s, TimePoint now);
  void ActOnIdle(core::Session s);
  void PersistActivity(const core::Session& s);
  // Each warning (seconds before the end, or kIdleWarning) is emitted once per session: whether
  // this is the first time, and forgetting it when the session is active again.
  static constexpr int64_t kIdleWarning = -1;
  bool FirstWarning(const std::string& id, int64_t which);
  void ForgetWarning(const std::string& id, int64_t which);

  // The transport to s's agent (the state is checked), counted as activity.
  Result<AgentTarget> TargetOf(core::Session s);
  Result<core::Session> PauseAs(const std::string& owner, std::string_view id_or_name,
                                core::Reason reason, const std::string& actor);
  Result<core::Session> ResumeAs(const std::string& owner, std::string_view id_or_name,
                                 core::Reason reason, const std::string& actor);
  // Create without its metrics.
  Result<core::Session> CreateFromRequest(const core::Principal& who,
                                          const core::CreateSessionRequest& req);
  // Applies one state-machine transition and stores it atomically. On success `s` is updated
  // and capacity held by a session that stopped holding it is released.
  Status Move(core::Session& s, core::SessionState to, core::Reason reason,
              const std::string& actor, std::string message = "");
  // Writes field changes if the state did not move meanwhile (re-reading and retrying a few
  // times when it did): `change` edits the session and may refuse it.
  Result<core::Session> Modify(const core::Principal& who, std::string_view id_or_name,
                               const std::function<Status(core::Session&)>& change);
  // A checkpoint a new session starts from.
  struct LayerSource {
    std::string session_id;
    std::string name;
  };
  // (pending|scheduled|stopped|error) → provisioning → running (or error).
  Status Provision(core::Session& s, const std::string& actor, core::Reason reason,
                   bool reuse_layer, const LayerSource* from = nullptr);
  // Where a new session's persistent volume comes from: a volume it adopts (restore), a copy of
  // another session's (remix), or (neither) a new empty one.
  struct PersistPlan {
    std::string adopt_volume_id;
    std::string copy_of_session;
  };
  // Create, with the parent and the checkpoint resolved.
  Result<core::Session> CreateSession(const core::Principal& who,
                                      const core::CreateSessionRequest& req,
                                      const std::string& parent_id, const LayerSource* from,
                                      const PersistPlan* persist = nullptr);
  // Gives the new session `s` its persistent volume (appended to s.volumes) before its record
  // is stored; the returned guard takes it back unless cancelled.
  Result<std::function<void()>> PreparePersist(core::Session& s, const PersistPlan& plan);
  // Soft delete: the record keeps its persistent volume until the retention window ends.
  void StartRetention(const core::Session& s);
  // Purge: the persistent volume goes with the record.
  void DropPersistVolume(const core::Session& s);
  // Marks the session busy with a checkpoint, restore or fork; conflict when it is already.
  Status ClaimCheckpointing(const std::string& id);
  void ReleaseCheckpointing(const std::string& id);
  Status Terminate(core::Session& s, const std::string& actor, core::Reason reason);
  Status StopSandbox(core::Session& s, const std::string& actor, core::Reason reason);
  // Resolves the volumes a new session of `owner` asks for (volume_id) and checks that each may
  // be attached as asked: read-write by this session alone, or read-only beside other
  // read-only users. REQUIRES: volumes_mu_ is held until the session is stored.
  Status ResolveVolumes(const std::string& owner, std::vector<core::VolumeMount>* volumes);
  // run_image_cmd: the service that runs the image's own command (Entrypoint + Cmd) in its
  // workdir; invalid_argument when the image has none.
  static constexpr std::string_view kImageCmdService = "image-cmd";
  Result<core::ServiceSpec> ImageCmdService(const core::CreateSessionRequest& req);
  // Runs the session's setup commands in its new sandbox, in order; the first that fails gives
  // an error naming it, its exit status and the tail of its output.
  Status RunSetup(const core::Session& s);
  // Starts the session's services in its new sandbox and waits until each runs (and is healthy,
  // with a check) within its ready timeout; an error names the service, its state, health and
  // the tail of its output.
  Status StartServices(const core::Session& s);
  // Claims capacity or queues; for Create, Start and scheduled starts.
  Status Admit(core::Session& s, bool wait, const std::string& actor, core::Reason reason,
               bool reuse_layer);
  // --- batch sessions (batch.cc) ---
  // Whether a session's dependencies are met: `failed` says why one never will be.
  struct DependencyVerdict {
    bool ready = false;
    std::string failed;
  };
  DependencyVerdict CheckDependencies(const core::Session& s);
  // Resolves ids or names of the caller's sessions to ids; invalid_argument for an unknown one.
  Status ResolveDependencies(const core::Principal& who, std::vector<std::string>* depends_on);
  // One controller pass over a batch session: a waiting one starts (or is cancelled) once its
  // dependencies decide; a running one gets its command started, or ends when it has ended.
  void TendBatch(const core::Session& s);
  void TendWaitingBatch(core::Session s);
  void TendRunningBatch(core::Session s);

  // PATCH resources (resize.cc): checks them as create does (ceiling, quota, capacity), applies
  // them to a live sandbox and stores them.
  Result<core::Session> Resize(const core::Principal& who, std::string_view id_or_name,
                               const json::object& resources);
  // Runs `action` for `id` in the background unless an action for it is already running.
  void RunOnce(const std::string& id, std::function<void()> action);
  void Touch(const std::string& id);
  // Whether a background process (POST …/processes) still runs in the session's sandbox.
  bool BackgroundProcessesRun(const core::Session& s);
  // Overlays the in-memory activity and queue position on a session read from the store.
  void Decorate(core::Session& s);
  // The latest end a session may have: created_at + min(user max_ttl, server max_lifetime).
  std::optional<TimePoint> LatestEnd(const core::Session& s);
  void Emit(const core::Session& s, std::string_view type, core::Reason reason,
            const std::string& actor, json::object data = {});

  store::Store& store_;
  drivers::Driver& driver_;
  ServiceOptions options_;
  std::function<void(std::function<void()>)> run_async_;
  EmitFn emit_;
  std::function<void()> notify_;
  ActivityLog* activity_log_ = nullptr;
  std::function<void(const core::Session&, SandboxEdge)> sandbox_edge_;
  Admission admission_;

  std::mutex mu_;
  std::map<std::string, Activity> activity_;          // GUARDED_BY(mu_)
  std::set<std::string> in_flight_;                   // GUARDED_BY(mu_): background actions
  std::set<std::string> checkpointing_;               // GUARDED_BY(mu_): see ClaimCheckpointing
  std::set<std::pair<std::string, int64_t>> warned_;  // GUARDED_BY(mu_): (id, seconds) sent
  int64_t next_agent_check_ms_ = 0;                   // the tick's own (MonotonicMillis)
  // Serializes "who uses this volume" checks with the inserts of the sessions that pass them.
  std::mutex volumes_mu_;
};

}  // namespace hutch::controller
