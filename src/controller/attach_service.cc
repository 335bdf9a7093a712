#include "controller/attach_service.h"

#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <filesystem>

#include <fmt/format.h>

#include "common/ids.h"
#include "common/json.h"
#include "common/log.h"
#include "common/time.h"
#include "controller/attach_recording.h"
#include "controller/session_service.h"

namespace hutch::controller {

namespace {

using core::AttachSession;
using core::AttachState;
using core::TargetRegistration;

// The default command: bash where the target has one, else sh.
const std::vector<std::string> kDefaultCommand = {"/bin/bash"};
const std::vector<std::string> kBashOrSh = {
    "/bin/sh", "-c", "if [ -x /bin/bash ]; then exec /bin/bash -i; else exec /bin/sh -i; fi"};

const std::map<std::string, std::string> kShellEnv = {
    {"PATH", "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"},
    {"TERM", "xterm-256color"},
    {"HOME", "/root"},
};

std::vector<std::string> Strings(const json::value* v) {
  std::vector<std::string> out;
  if (v && v->is_array())
    for (const auto& s : v->as_array())
      if (s.is_string()) out.emplace_back(s.as_string());
  return out;
}

std::string Str(const json::object& o, std::string_view key) {
  const json::value* v = o.if_contains(key);
  return v && v->is_string() ? std::string(v->as_string()) : std::string();
}

int64_t Int(const json::object& o, std::string_view key, int64_t fallback) {
  const json::value* v = o.if_contains(key);
  return v && v->is_int64() ? v->as_int64() : fallback;
}

std::optional<TimePoint> Time(const json::object& o, std::string_view key) {
  std::string s = Str(o, key);
  return s.empty() ? std::nullopt : ParseTime(s);
}

json::object SessionBody(const AttachSession& s) {
  json::object o = core::AttachSessionJson(s);
  o["record_input"] = s.record_input;
  o["idle_timeout_seconds"] = s.idle_timeout_seconds;
  o["max_duration_seconds"] = s.max_duration_seconds;
  return o;
}

Result<AttachSession> SessionFromBody(std::string_view body) {
  ASSIGN_OR_RETURN(json::object o, ParseJsonObject(body));
  AttachSession s;
  s.id = Str(o, "id");
  s.owner = Str(o, "owner");
  s.title = Str(o, "title");
  s.service_name = Str(o, "service_name");
  if (const json::value* t = o.if_contains("target"); t && t->is_object()) {
    auto target = core::ParseAttachTarget(t->as_object());
    if (target.ok()) s.target = *target;
  }
  s.command = Strings(o.if_contains("command"));
  s.state = core::ParseAttachState(Str(o, "state")).value_or(AttachState::kTerminated);
  s.reason = Str(o, "reason");
  s.message = Str(o, "message");
  s.observe_only = Str(o, "mode") == "observe_only";
  const json::value* ri = o.if_contains("record_input");
  s.record_input = ri && ri->is_bool() && ri->as_bool();
  s.idle_timeout_seconds = Int(o, "idle_timeout_seconds", 900);
  s.max_duration_seconds = Int(o, "max_duration_seconds", 14400);
  s.created_at = Time(o, "created_at").value_or(TimePoint{});
  s.started_at = Time(o, "started_at");
  s.ended_at = Time(o, "ended_at");
  return s;
}

// The recording, and the idle clock: keystrokes and output are activity.
class ActivityTap final : public TerminalTap {
 public:
  ActivityTap(std::shared_ptr<TerminalTap> inner, std::function<void()> note)
      : inner_(std::move(inner)), note_(std::move(note)) {}
  void Output(std::string_view data) override {
    note_();
    if (inner_) inner_->Output(data);
  }
  void Input(std::string_view data) override {
    note_();
    if (inner_) inner_->Input(data);
  }
  void Resize(uint16_t rows, uint16_t cols) override {
    if (inner_) inner_->Resize(rows, cols);
  }

 private:
  std::shared_ptr<TerminalTap> inner_;
  std::function<void()> note_;
};

}  // namespace

AttachService::AttachService(store::Store& store, drivers::Driver& driver, SessionService& sessions,
                             std::string data_dir, CommandFn audit_command, AttachOptions options)
    : store_(store),
      driver_(driver),
      sessions_(sessions),
      data_dir_(std::move(data_dir)),
      audit_command_(std::move(audit_command)),
      options_(std::move(options)) {
  ender_ = std::thread([this] {
    std::unique_lock lock(mu_);
    for (;;) {
      to_end_cv_.wait(lock, [this] { return stopping_ || !to_end_.empty(); });
      if (to_end_.empty()) return;
      std::vector<std::string> batch;
      batch.swap(to_end_);
      lock.unlock();
      for (const auto& id : batch) (void)Finish(id, "exit");
      lock.lock();
    }
  });
}

AttachService::~AttachService() {
  {
    std::lock_guard lock(mu_);
    stopping_ = true;
  }
  to_end_cv_.notify_all();
  ender_.join();
  std::vector<std::string> ids;
  {
    std::lock_guard lock(mu_);
    for (const auto& [id, live] : live_) ids.push_back(id);
  }
  for (const auto& id : ids) (void)Finish(id, "server_stop");
}

Result<TargetRegistration> AttachService::AddTarget(TargetRegistration t) {
  t.created_at = Now();
  RETURN_IF_ERROR(store_.CreateAttachTarget(
      t.service_name, json::serialize(core::TargetRegistrationJson(t)), t.created_at));
  return t;
}

Result<std::vector<TargetRegistration>> AttachService::ListTargets() {
  ASSIGN_OR_RETURN(std::vector<std::string> specs, store_.ListAttachTargets());
  std::vector<TargetRegistration> out;
  for (const auto& spec : specs) {
    ASSIGN_OR_RETURN(json::object o, ParseJsonObject(spec));
    TargetRegistration t;
    // created_at is not an input; the rest parses as it was registered.
    auto created = Time(o, "created_at");
    o.erase("created_at");
    ASSIGN_OR_RETURN(t, core::ParseTargetRegistration(o));
    t.created_at = created.value_or(TimePoint{});
    out.push_back(std::move(t));
  }
  return out;
}

Result<TargetRegistration> AttachService::GetTarget(std::string_view service_name) {
  ASSIGN_OR_RETURN(std::string spec, store_.GetAttachTarget(service_name));
  ASSIGN_OR_RETURN(json::object o, ParseJsonObject(spec));
  auto created = Time(o, "created_at");
  o.erase("created_at");
  ASSIGN_OR_RETURN(TargetRegistration t, core::ParseTargetRegistration(o));
  t.created_at = created.value_or(TimePoint{});
  return t;
}

Status AttachService::RemoveTarget(std::string_view service_name) {
  return store_.DeleteAttachTarget(service_name);
}

bool AttachService::MayAttach(const core::Principal& who, const TargetRegistration& t) const {
  if (who.admin) return true;
  for (const auto& u : t.users)
    if (u == who.user_id || u == who.user_name) return true;
  for (const auto& r : t.roles)
    if (r == who.role) return true;
  return false;
}

Status AttachService::Save(const AttachSession& s) {
  store::AttachRow row;
  row.id = s.id;
  row.owner = s.owner;
  row.service_name = s.service_name;
  row.state = std::string(core::ToString(s.state));
  row.created_at = s.created_at;
  row.body = json::serialize(SessionBody(s));
  return store_.PutAttachSession(row);
}

Result<AttachSession> AttachService::Load(std::string_view id) {
  ASSIGN_OR_RETURN(store::AttachRow row, store_.GetAttachSession(id));
  return SessionFromBody(row.body);
}

std::string AttachService::RecordingFile(std::string_view id) const {
  return fmt::format("{}/recordings/{}.cast", data_dir_, id);
}

Result<AttachSession> AttachService::Create(const core::Principal& who, const CreateRequest& req) {
  AttachSession s;
  s.id = NewId("att");
  s.owner = who.user_id;
  s.title = req.title;
  s.created_at = Now();
  s.reason = "created";
  int64_t max_concurrent = 0;
  std::vector<std::string> command;
  if (!req.service_name.empty()) {
    auto t = GetTarget(req.service_name);
    if (!t.ok() || !MayAttach(who, *t))
      return NotFound(fmt::format("no attach target '{}'", req.service_name));
    s.service_name = t->service_name;
    s.target = t->target;
    command = t->command;
    max_concurrent = t->max_concurrent;
    s.observe_only = t->observe_only;
    s.record_input = t->record_input;
    s.idle_timeout_seconds = t->idle_timeout_seconds;
    s.max_duration_seconds = t->max_duration_seconds;
  } else if (req.target) {
    if (!who.admin)
      return PermissionDenied("only an admin may attach to a target that is not registered");
    s.target = *req.target;
  } else {
    return InvalidArgument("give service_name or target");
  }
  // The server's Engine unless the target names its own; recorded, so the session says which.
  if (s.target.kind == "docker" && s.target.docker_host.empty())
    s.target.docker_host = options_.docker_host.starts_with("unix://")
                               ? options_.docker_host.substr(7)
                               : options_.docker_host;
  if (!req.command.empty()) {
    if (s.observe_only)
      return PermissionDenied(fmt::format(
          "shells on '{}' are observe-only: the registered command runs", s.service_name));
    command = req.command;
  }
  s.command = command.empty() ? kDefaultCommand : command;
  // The slot first, so concurrent creates cannot pass the limit together.
  if (max_concurrent > 0) {
    std::lock_guard lock(mu_);
    int& used = reserved_[s.service_name];
    if (used >= max_concurrent)
      return ResourceExhausted(fmt::format(
          "service '{}' allows at most {} concurrent shells (max_concurrent); {} are open",
          s.service_name, max_concurrent, used));
    ++used;
  }
  auto release = [this, name = s.service_name, max_concurrent] {
    if (max_concurrent <= 0) return;
    std::lock_guard lock(mu_);
    if (--reserved_[name] <= 0) reserved_.erase(name);
  };
  RETURN_IF_ERROR(Save(s).WithContext("record attach session"));

  auto live = std::make_shared<Live>();
  Status started = [&]() -> Status {
    if (s.target.kind == "session") {
      core::Principal admin;
      admin.admin = true;
      admin.role = "admin";
      ASSIGN_OR_RETURN(SessionService::AgentTarget at, sessions_.Agent(admin, s.target.session));
      live->transport = at.transport;
      return Status::Ok();
    }
    ASSIGN_OR_RETURN(live->agent, driver_.Attach(s.id, s.target, kShellEnv));
    live->transport = live->agent->transport();
    return Status::Ok();
  }();
  if (started.ok()) {
    (void)mkdir((data_dir_ + "/recordings").c_str(), 0700);
    auto recording =
        AttachRecording::Create(RecordingFile(s.id), s.title.empty() ? s.id : s.title,
                                s.record_input, [this, snapshot = s](std::string command) {
                                  if (audit_command_) audit_command_(snapshot, std::move(command));
                                });
    if (recording.ok()) {
      live->recording = *recording;
    } else {
      started = recording.status();
    }
  }
  if (!started.ok()) {
    release();
    if (live->agent) (void)live->agent->End();
    (void)core::Transition(s, AttachState::kTerminated, "error", Now(), started.message());
    (void)Save(s);
    return started;
  }
  RETURN_IF_ERROR(core::Transition(s, AttachState::kActive, "attached", Now()));
  RETURN_IF_ERROR(Save(s));
  live->session = s;
  live->last_activity = std::chrono::steady_clock::now();
  {
    std::lock_guard lock(mu_);
    live_[s.id] = live;
  }
  LOG_INFO("attach {}: {} attached to {} ({})", s.id, who.user_name,
           s.service_name.empty() ? s.target.kind : s.service_name, fmt::join(s.command, " "));
  return s;
}

Result<AttachSession> AttachService::Get(const core::Principal& who, std::string_view id) {
  auto s = Load(id);
  if (!s.ok() || (!who.admin && s->owner != who.user_id))
    return NotFound(fmt::format("attach session {} not found", id));
  return s;
}

Result<std::vector<AttachSession>> AttachService::List(const core::Principal& who,
                                                       std::string_view state, int limit) {
  if (!state.empty() && !core::ParseAttachState(state))
    return InvalidArgument("state must be provisioning, active or terminated");
  ASSIGN_OR_RETURN(auto rows, store_.ListAttachSessions(who.OwnerFilter(), state, limit));
  std::vector<AttachSession> out;
  for (const auto& r : rows) {
    auto s = SessionFromBody(r.body);
    if (s.ok()) out.push_back(std::move(*s));
  }
  return out;
}

Result<AttachSession> AttachService::Finish(const std::string& id, std::string reason,
                                            std::string message) {
  std::shared_ptr<Live> live;
  std::function<void()> close_terminal;
  {
    std::lock_guard lock(mu_);
    auto it = live_.find(id);
    if (it != live_.end()) {
      live = it->second;
      live_.erase(it);
      close_terminal = std::move(live->close_terminal);
      const std::string& name = live->session.service_name;
      auto r = reserved_.find(name);
      if (r != reserved_.end() && --r->second <= 0) reserved_.erase(r);
    }
  }
  if (!live) return Load(id);
  // A session target's shell is a command of the session's agent: closing its terminal's
  // connection is what kills it (the exec relay closes the agent side). An attached agent's
  // shell dies with the agent below, and its terminal then closes by itself.
  if (!live->agent && close_terminal) close_terminal();
  if (live->agent) {
    Status st = live->agent->End();
    if (!st.ok()) LOG_WARN("attach {}: {}", id, st.ToString());
  }
  AttachSession s = live->session;
  RETURN_IF_ERROR(
      core::Transition(s, AttachState::kTerminated, std::move(reason), Now(), std::move(message)));
  RETURN_IF_ERROR(Save(s));
  LOG_INFO("attach {}: terminated ({})", id, s.reason);
  return s;
}

Result<AttachSession> AttachService::End(const core::Principal& who, std::string_view id) {
  ASSIGN_OR_RETURN(AttachSession s, Get(who, id));
  if (s.state == AttachState::kTerminated) return s;
  return Finish(s.id, who.admin && s.owner != who.user_id ? "admin" : "user");
}

Result<AttachService::Terminal> AttachService::OpenTerminal(const core::Principal& who,
                                                            std::string_view id) {
  ASSIGN_OR_RETURN(AttachSession s, Get(who, id));
  std::lock_guard lock(mu_);
  auto it = live_.find(s.id);
  if (it == live_.end())
    return Conflict(fmt::format("attach session {} is {}", s.id, core::ToString(s.state)));
  Live& live = *it->second;
  if (live.terminal_open)
    return Conflict(
        fmt::format("attach session {} has its terminal open already; observe it with "
                    "GET /v1/attach/{}/observe",
                    s.id, s.id));
  live.terminal_open = true;
  live.last_activity = std::chrono::steady_clock::now();
  Terminal t;
  t.session = live.session;
  t.transport = live.transport;
  t.tap = std::make_shared<ActivityTap>(live.recording, [this, id = s.id] { NoteActivity(id); });
  bool is_default = live.session.command == kDefaultCommand;
  t.argv = is_default ? kBashOrSh : live.session.command;
  return t;
}

void AttachService::TerminalClosed(const std::string& id) {
  {
    std::lock_guard lock(mu_);
    to_end_.push_back(id);
  }
  to_end_cv_.notify_all();
}

void AttachService::SetTerminalCloser(const std::string& id, std::function<void()> close) {
  std::lock_guard lock(mu_);
  auto it = live_.find(id);
  if (it != live_.end()) it->second->close_terminal = std::move(close);
}

void AttachService::NoteActivity(const std::string& id) {
  std::lock_guard lock(mu_);
  auto it = live_.find(id);
  if (it != live_.end()) it->second->last_activity = std::chrono::steady_clock::now();
}

bool AttachService::IsLive(const std::string& id) {
  std::lock_guard lock(mu_);
  return live_.contains(id);
}

Result<std::string> AttachService::RecordingPath(const core::Principal& who, std::string_view id) {
  if (!who.admin) return NotFound(fmt::format("no recording of {}", id));
  ASSIGN_OR_RETURN(AttachSession s, Get(who, id));
  std::string path = RecordingFile(s.id);
  if (access(path.c_str(), R_OK) != 0) return NotFound(fmt::format("no recording of {}", id));
  return path;
}

Result<std::pair<AttachSession, std::string>> AttachService::Observe(const core::Principal& who,
                                                                     std::string_view id) {
  auto s = Load(id);
  if (!s.ok()) return NotFound(fmt::format("attach session {} not found", id));
  bool allowed = who.admin || s->owner == who.user_id;
  if (!allowed && !s->service_name.empty()) {
    auto t = GetTarget(s->service_name);
    allowed = t.ok() && MayAttach(who, *t);
  }
  if (!allowed) return NotFound(fmt::format("attach session {} not found", id));
  std::string path = RecordingFile(s->id);
  if (access(path.c_str(), R_OK) != 0) return NotFound(fmt::format("no recording of {}", id));
  return std::pair{std::move(*s), path};
}

void AttachService::Tick() {
  auto now = std::chrono::steady_clock::now();
  TimePoint wall = Now();
  std::vector<std::pair<std::string, std::string>> due;
  {
    std::lock_guard lock(mu_);
    for (const auto& [id, live] : live_) {
      const AttachSession& s = live->session;
      if (s.idle_timeout_seconds > 0 &&
          now - live->last_activity > std::chrono::seconds(s.idle_timeout_seconds))
        due.emplace_back(id, "idle");
      else if (s.max_duration_seconds > 0 && s.started_at &&
               wall - *s.started_at > std::chrono::seconds(s.max_duration_seconds))
        due.emplace_back(id, "timeout");
    }
  }
  for (auto& [id, reason] : due) (void)Finish(id, reason);
  if (options_.recording_retention_days > 0 && now - last_sweep_ >= std::chrono::minutes(1)) {
    last_sweep_ = now;
    SweepRecordings(wall);
  }
}

int AttachService::SweepRecordings(TimePoint now) {
  if (options_.recording_retention_days <= 0) return 0;
  std::string dir = data_dir_ + "/recordings";
  auto before = now - std::chrono::hours(24 * options_.recording_retention_days);
  int removed = 0;
  std::error_code ec;
  for (const auto& e : std::filesystem::directory_iterator(dir, ec)) {
    std::string name = e.path().filename();
    if (!name.ends_with(".cast")) continue;
    std::string id = name.substr(0, name.size() - 5);
    if (IsLive(id)) continue;
    // The file's last write is when its shell last printed, at the latest when it ended.
    struct stat st;
    if (lstat(e.path().c_str(), &st) != 0 || !S_ISREG(st.st_mode)) continue;
    if (std::chrono::system_clock::from_time_t(st.st_mtime) >= before) continue;
    if (unlink(e.path().c_str()) == 0) {
      ++removed;
      LOG_INFO("attach {}: recording deleted (older than {} days)", id,
               options_.recording_retention_days);
    }
  }
  return removed;
}

void AttachService::ReconcileAtStart() {
  for (const char* state : {"provisioning", "active"}) {
    auto rows = store_.ListAttachSessions("", state, 1000);
    if (!rows.ok()) continue;
    for (const auto& r : *rows) {
      auto s = SessionFromBody(r.body);
      if (!s.ok()) continue;
      if (core::Transition(*s, AttachState::kTerminated, "server_restart", Now()).ok())
        (void)Save(*s);
    }
  }
}

}  // namespace hutch::controller
