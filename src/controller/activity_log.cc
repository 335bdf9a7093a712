#include "controller/activity_log.h"

#include <set>

#include <fmt/format.h>

#include "agent/bridge_protocol.h"
#include "agent/client.h"
#include "common/log.h"

namespace hutch::controller {

namespace {

// What a record keeps of a command line or a milestone's text, and of its data.
constexpr size_t kMaxCommand = 4096;
constexpr size_t kMaxData = 8192;
constexpr auto kPurgeEvery = std::chrono::hours(1);
// Sessions whose last activity is this recent are read every interval.
constexpr auto kRecent = std::chrono::minutes(5);

core::ActivityRecord Base(const core::Session& s, std::string_view type, const std::string& actor,
                          std::string command, std::optional<int64_t> exit_code) {
  core::ActivityRecord r;
  r.at = Now();
  r.type = std::string(type);
  r.session_id = s.id;
  r.owner = s.owner;
  r.workshop_id = s.workshop_id;
  r.actor = actor;
  if (command.size() > kMaxCommand) command.resize(kMaxCommand);
  r.command = std::move(command);
  r.exit_code = exit_code;
  return r;
}

// `r` and, for a command, the records of the git and kubectl commands in it.
std::vector<core::ActivityRecord> WithClassified(core::ActivityRecord r) {
  std::vector<core::ActivityRecord> out;
  std::vector<std::string> classified;
  if (r.type == core::kActivityShellCommand || r.type == core::kActivityExec)
    classified = core::ClassifyCommandLine(r.command);
  const std::string source = r.type;
  out.push_back(std::move(r));
  for (size_t i = 0; i < classified.size(); ++i) {
    core::ActivityRecord c = out.front();
    c.type = classified[i];
    c.data_json = json::serialize(json::object{{"source", source}});
    if (!c.origin.empty()) c.origin += fmt::format(":{}", i + 1);
    out.push_back(std::move(c));
  }
  return out;
}

// One line from inside: {"type":"activity","kind":…,"command"?,"cwd"?,"exit_code"?,"data"?}.
Result<core::ActivityRecord> ParseInsideLine(const core::Session& s, std::string_view line) {
  ASSIGN_OR_RETURN(json::object o, ParseJsonObject(line));
  const json::value* kind = o.if_contains("kind");
  if (kind == nullptr || !kind->is_string()) return InvalidArgument("kind is required");
  std::string type(kind->as_string());
  // Only what a program in the session may say about itself: no exec, file, check or session
  // records, which the server makes.
  if (!(type == core::kActivityShellCommand ||
        (type.starts_with(core::kActivityMilestonePrefix) && core::IsActivityType(type))))
    return InvalidArgument(fmt::format("kind '{}' is not shell.command or milestone.<name>", type));
  std::string command;
  if (const json::value* c = o.if_contains("command"); c && c->is_string())
    command = std::string(c->as_string());
  std::optional<int64_t> exit_code;
  if (const json::value* e = o.if_contains("exit_code"); e && e->is_int64())
    exit_code = e->as_int64();
  json::object data;
  if (const json::value* d = o.if_contains("data")) {
    if (!d->is_object()) return InvalidArgument("data must be a JSON object");
    data = d->as_object();
  }
  if (const json::value* cwd = o.if_contains("cwd"); cwd && cwd->is_string()) data["cwd"] = *cwd;
  if (command.size() > kMaxCommand) data["truncated"] = true;
  core::ActivityRecord r = Base(s, type, "session", std::move(command), exit_code);
  r.data_json = json::serialize(data);
  if (r.data_json.size() > kMaxData) r.data_json = R"({"truncated":true})";
  return r;
}

}  // namespace

ActivityLog::ActivityLog(store::Store& store, drivers::Driver& driver, ActivityOptions options)
    : store_(store), driver_(driver), options_(options) {}

ActivityLog::~ActivityLog() {
  {
    std::lock_guard lock(mu_);
    stop_ = true;
  }
  cv_.notify_all();
  if (thread_.joinable()) thread_.join();
}

void ActivityLog::Start() {
  thread_ = std::thread([this] { Run(); });
}

void ActivityLog::Append(const core::Session& s, std::vector<core::ActivityRecord> records) {
  if (records.empty()) return;
  if (Status st = store_.AppendActivity(records).status(); !st.ok()) {
    LOG_SESSION_WARN(s.id, "record activity: {}", st.ToString());
    return;
  }
  {
    std::lock_guard lock(mu_);
    ++generation_;
  }
  cv_.notify_all();
}

void ActivityLog::Record(const core::Session& s, std::string_view type, const std::string& actor,
                         std::string command, std::optional<int64_t> exit_code, json::object data) {
  core::ActivityRecord r = Base(s, type, actor, std::move(command), exit_code);
  r.data_json = json::serialize(data);
  Append(s, WithClassified(std::move(r)));
}

std::vector<core::ActivityRecord> ActivityLog::RecordsOfLines(
    const core::Session& s, const std::string& instance, const std::vector<InsideLine>& lines) {
  std::vector<core::ActivityRecord> out;
  for (const InsideLine& l : lines) {
    Result<core::ActivityRecord> r = ParseInsideLine(s, l.line);
    if (!r.ok()) {
      LOG_SESSION_DEBUG(s.id, "activity line {} of {} left out: {}", l.seq, instance,
                        r.status().message());
      continue;
    }
    r->at = l.at;
    r->origin = fmt::format("{}:{}", instance, l.seq);
    for (auto& rec : WithClassified(std::move(*r))) out.push_back(std::move(rec));
  }
  return out;
}

Status ActivityLog::CollectOnce(const core::Session& s) {
  ASSIGN_OR_RETURN(std::shared_ptr<const agent::Transport> transport,
                   driver_.ConnectAgent(s.id, s.driver_state));
  ASSIGN_OR_RETURN(agent::AgentClient client, agent::AgentClient::Connect(*transport));
  std::lock_guard lock(collect_mu_);
  auto& [instance, stored, dropped] = cursors_[s.id];
  // A batch at a time, until the agent has nothing past what is stored.
  for (;;) {
    ASSIGN_OR_RETURN(agent::ActivityBatch batch, client.ReadActivity(instance, stored));
    if (batch.instance != instance) {
      // Another agent (the sandbox was made again, or this server never read it): it answered
      // from its first line, whatever the cursor said.
      instance = batch.instance;
      stored = 0;
      dropped = 0;
    }
    if (batch.dropped != dropped) {
      LOG_SESSION_WARN(s.id, "activity: the agent lost {} lines (its buffer was full)",
                       batch.dropped - dropped);
      dropped = batch.dropped;
    }
    if (batch.lines.empty()) return Status::Ok();
    std::vector<InsideLine> lines;
    for (auto& l : batch.lines)
      lines.push_back(
          InsideLine{l.seq, FromUnixMillis(static_cast<int64_t>(l.at_ms)), std::move(l.line)});
    std::vector<core::ActivityRecord> records = RecordsOfLines(s, batch.instance, lines);
    if (!records.empty()) {
      RETURN_IF_ERROR(store_.AppendActivity(records).status());
      {
        std::lock_guard wake(mu_);
        ++generation_;
      }
      cv_.notify_all();
    }
    stored = lines.back().seq;
  }
}

void ActivityLog::Collect(const core::Session& s) {
  if (Status st = CollectOnce(s); !st.ok())
    LOG_SESSION_DEBUG(s.id, "collect activity: {}", st.ToString());
  // The sandbox goes: its agent's numbers go with it.
  std::lock_guard lock(collect_mu_);
  cursors_.erase(s.id);
}

void ActivityLog::CollectAll(bool everyone) {
  store::SessionFilter f;
  f.state = core::SessionState::kRunning;
  f.limit = 1000;
  const TimePoint recent = Now() - kRecent;
  std::set<std::string> running;
  for (;;) {
    Result<store::SessionPage> page = store_.ListSessions(f);
    if (!page.ok()) {
      LOG_WARN("activity: list running sessions: {}", page.status().ToString());
      return;
    }
    for (const core::Session& s : page->sessions) {
      running.insert(s.id);
      if (!everyone &&
          !(s.activity == "busy" || (s.last_activity_at && *s.last_activity_at >= recent)))
        continue;
      if (Status st = CollectOnce(s); !st.ok())
        LOG_SESSION_DEBUG(s.id, "collect activity: {}", st.ToString());
    }
    if (page->next_page_token.empty()) break;
    f.page_token = page->next_page_token;
  }
  if (!everyone) return;
  // Sessions that ended without passing the session service's edge (a crash): forgotten here.
  std::lock_guard lock(collect_mu_);
  std::erase_if(cursors_, [&](const auto& c) { return !running.contains(c.first); });
}

void ActivityLog::Run() {
  int round = 0;
  auto next_purge = std::chrono::steady_clock::now();
  for (;;) {
    {
      std::unique_lock lock(mu_);
      if (cv_.wait_for(lock, options_.interval, [this] { return stop_; })) return;
    }
    CollectAll(round++ % std::max(1, options_.idle_every) == 0);
    if (options_.retention_days > 0 && std::chrono::steady_clock::now() >= next_purge) {
      next_purge = std::chrono::steady_clock::now() + kPurgeEvery;
      auto purged =
          store_.PurgeActivityBefore(Now() - std::chrono::hours(24) * options_.retention_days);
      if (!purged.ok()) LOG_WARN("activity: purge: {}", purged.status().ToString());
    }
  }
}

void ActivityLog::Wait(std::chrono::steady_clock::time_point deadline,
                       const std::atomic<bool>& cancelled) {
  deadline = std::min(deadline, std::chrono::steady_clock::now() + std::chrono::seconds(1));
  std::unique_lock lock(mu_);
  const uint64_t seen = generation_;
  cv_.wait_until(lock, deadline, [&] { return generation_ != seen || cancelled.load() || stop_; });
}

void ActivityLog::WakeAll() {
  { std::lock_guard lock(mu_); }
  cv_.notify_all();
}

}  // namespace hutch::controller
