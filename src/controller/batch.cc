// SessionService: batch sessions (docs/api.md, "Batch sessions") — a command run once in a
// session that then ends on its own, and the sessions that wait for it.
//
// The command runs as a background process of the session's agent, tagged kBatchTag, and the
// controller polls it each tick rather than holding a connection to it: the agent keeps the
// process, its exit status and its output ring across a server restart, so a server that comes
// back finds the command still running (or ended) and records it the same way.
#include <algorithm>

#include <fmt/format.h>

#include "agent/client.h"
#include "agent/stream_protocol.h"
#include "common/log.h"
#include "controller/session_service.h"

namespace hutch::controller {

using core::Reason;
using core::Session;
using core::SessionState;

namespace {

const std::string kSystemActor = "system";
// The tag of a batch session's command among its background processes.
const std::string kBatchTag = "hutch-batch";
// How much of the command's output the session keeps when it ends.
constexpr size_t kOutputTailBytes = 4096;

bool IsBatch(const Session& s) { return s.run.type == core::kTypeBatch; }

// The last kOutputTailBytes of the ended process's output, both streams as they came (the
// agent's ring replayed without follow).
Result<std::string> ReadOutputTail(const agent::Transport& transport) {
  agent::ProcessAttachRequest req;
  req.selector = kBatchTag;
  req.follow = false;
  ASSIGN_OR_RETURN(agent::AgentStream stream, agent::AgentStream::Attach(transport, req));
  std::string tail;
  for (;;) {
    ASSIGN_OR_RETURN(std::optional<agent::AgentStream::Event> e, stream.Next(5000));
    if (!e) return Unavailable("the agent sent no output of the batch command for 5 s");
    if (e->kind == agent::AgentStream::Event::Kind::kExit) break;
    tail += e->data;
    if (tail.size() > 2 * kOutputTailBytes) tail.erase(0, tail.size() - kOutputTailBytes);
  }
  if (tail.size() > kOutputTailBytes) tail.erase(0, tail.size() - kOutputTailBytes);
  return tail;
}

}  // namespace

SessionService::DependencyVerdict SessionService::CheckDependencies(const Session& s) {
  DependencyVerdict v;
  v.ready = true;
  for (const std::string& dep : s.depends_on) {
    Result<Session> d = store_.GetSession("", dep);
    if (!d.ok()) {
      if (d.status().code() != Code::kNotFound) {
        v.ready = false;  // the store did not answer: ask again next tick
        continue;
      }
      v.failed = fmt::format("dependency {} was purged before it ended with result success", dep);
      return v;
    }
    if (d->state == SessionState::kTerminated && d->run.result == core::kResultSuccess) continue;
    if (core::IsFinal(d->state)) {
      v.failed = fmt::format("dependency {} ended ({}, reason {}) with result {}", dep,
                             core::ToString(d->state), core::ToString(d->reason),
                             d->run.result.empty() ? "none" : d->run.result);
      return v;
    }
    v.ready = false;
  }
  return v;
}

Status SessionService::ResolveDependencies(const core::Principal& who,
                                           std::vector<std::string>* depends_on) {
  for (size_t i = 0; i < depends_on->size(); ++i) {
    std::string& dep = (*depends_on)[i];
    Result<Session> d = store_.GetSession(who.OwnerFilter(), dep);
    if (!d.ok()) {
      if (d.status().code() == Code::kNotFound)
        return InvalidArgument(fmt::format("depends_on[{}]: no session '{}' of yours", i, dep));
      return d.status();
    }
    dep = d->id;
  }
  for (size_t i = 0; i < depends_on->size(); ++i)
    for (size_t j = 0; j < i; ++j)
      if ((*depends_on)[i] == (*depends_on)[j])
        return InvalidArgument(
            fmt::format("depends_on[{}] names the same session as depends_on[{}]", i, j));
  return Status::Ok();
}

void SessionService::TendWaitingBatch(Session s) {
  // Queued for capacity already (its dependencies were met earlier): the queue starts it.
  if (admission_.Position(s.id) > 0) return;
  DependencyVerdict v = CheckDependencies(s);
  if (!v.failed.empty()) {
    Status st = Move(s, SessionState::kCancelled, Reason::kDependency, kSystemActor, v.failed);
    if (!st.ok()) LOG_SESSION_WARN(s.id, "cancel for a failed dependency: {}", st.ToString());
    return;
  }
  if (!v.ready) return;
  Status st = Admit(s, /*wait=*/true, kSystemActor, Reason::kDependency, /*reuse_layer=*/false);
  if (!st.ok()) LOG_SESSION_WARN(s.id, "start after its dependencies: {}", st.ToString());
}

void SessionService::TendRunningBatch(Session s) {
  auto transport = driver_.ConnectAgent(s.id, s.driver_state);
  if (!transport.ok()) return;
  auto client = agent::AgentClient::Connect(**transport, 2000);
  if (!client.ok()) {
    AgentFailed(s, client.status());
    return;
  }
  auto list = client->Call(agent::MessageType::kProcessList, {}, 5000);
  if (!list.ok()) return;
  auto it = std::find_if(list->begin(), list->end(),
                         [](const core::ProcessInfo& p) { return p.tag == kBatchTag; });
  if (it == list->end()) {
    // Not started yet (the session just became running, or the server died before it could).
    core::ProcessStartRequest req;
    req.exec.argv = {"/bin/sh", "-c", s.run.command};
    req.tag = kBatchTag;
    auto started =
        client->Call(agent::MessageType::kProcessStart, agent::EncodeProcessStartRequest(req));
    if (!started.ok()) {
      LOG_SESSION_WARN(s.id, "start the batch command: {}", started.status().ToString());
      return;
    }
    LOG_SESSION_INFO(s.id, "batch command started");
    Touch(s.id);
    return;
  }
  if (it->running) return;
  Result<std::string> tail = ReadOutputTail(**transport);
  if (!tail.ok()) LOG_SESSION_WARN(s.id, "read the batch output: {}", tail.status().ToString());
  s.run.result =
      it->exit_code == 0 && it->signal == 0 ? core::kResultSuccess : core::kResultFailure;
  s.run.exit_code = it->signal != 0 ? -1 : it->exit_code;
  s.run.output_tail = tail.ok() ? *tail : "";
  LOG_SESSION_INFO(s.id, "batch command ended: exit {} signal {}", it->exit_code, it->signal);
  Status st = Terminate(s, kSystemActor, Reason::kCompleted);
  if (!st.ok()) LOG_SESSION_WARN(s.id, "end the completed batch: {}", st.ToString());
}

void SessionService::TendBatch(const Session& s) {
  if (!IsBatch(s)) return;
  if (s.state == SessionState::kPending && s.reason == Reason::kDependency) {
    RunOnce(s.id, [this, s] { TendWaitingBatch(s); });
  } else if (s.state == SessionState::kRunning) {
    RunOnce(s.id, [this, s] { TendRunningBatch(s); });
  }
}

Result<Dependencies> SessionService::GetDependencies(const core::Principal& who,
                                                     std::string_view id_or_name) {
  ASSIGN_OR_RETURN(Session s, store_.GetSession(who.OwnerFilter(), id_or_name));
  Dependencies out;
  for (const std::string& dep : s.depends_on) {
    Result<Session> d = store_.GetSession(who.OwnerFilter(), dep);
    if (d.ok()) {
      Decorate(*d);
      out.depends_on.push_back(std::move(*d));
    } else {
      out.missing.push_back(dep);  // purged (or not the caller's to see)
    }
  }
  ASSIGN_OR_RETURN(std::vector<Session> dependents, store_.SessionsDependingOn(s.id));
  for (Session& d : dependents) {
    if (!who.admin && d.owner != who.user_id) continue;
    Decorate(d);
    out.dependents.push_back(std::move(d));
  }
  Decorate(s);
  out.session = std::move(s);
  return out;
}

}  // namespace hutch::controller
