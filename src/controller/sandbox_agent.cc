#include "controller/sandbox_agent.h"

#include <fmt/format.h>

#include "agent/client.h"
#include "agent/stream_protocol.h"
#include "controller/session_service.h"

namespace hutch::controller {

namespace {

// Reports an agent that did not answer; when its sandbox died, the caller learns why
// ("sandbox_died: agent exited (signal 9)") instead of the broken connection's detail.
Status Failed(SessionService& service, const core::Session& s, const Status& st) {
  if (std::optional<std::string> died = service.AgentFailed(s, st)) return Unavailable(*died);
  return st;
}

// One request/answer exchange with the session's agent: resolves the session, connects, runs
// `call` on the connection, and reports an agent that did not answer.
template <class Call>
auto WithAgent(SessionService& service, const core::Principal& who, std::string_view id,
               core::Session* touched, Call call)
    -> decltype(call(std::declval<agent::AgentClient&>())) {
  core::Session resolved;
  auto target = service.Agent(who, id, &resolved);
  if (touched) *touched = resolved;
  if (!target.ok()) return target.status();
  auto client = agent::AgentClient::Connect(*target->transport);
  if (!client.ok()) return Failed(service, target->session, client.status());
  auto answer = call(*client);
  if (!answer.ok()) return Failed(service, target->session, answer.status());
  return answer;
}

// The one entry of a list answer that names one process or service.
template <class T>
Result<T> Single(Result<std::vector<T>> list, std::string_view what) {
  if (!list.ok()) return list.status();
  if (list->size() != 1) return Internal(fmt::format("agent answered no {}", what));
  return std::move(list->front());
}

}  // namespace

OutputStream::OutputStream(SessionService& service, core::Session session,
                           std::unique_ptr<agent::AgentStream> stream, std::shared_ptr<void> busy)
    : service_(&service),
      session_(std::move(session)),
      stream_(std::move(stream)),
      busy_(std::move(busy)) {}
OutputStream::OutputStream(OutputStream&&) noexcept = default;
OutputStream& OutputStream::operator=(OutputStream&&) noexcept = default;
OutputStream::~OutputStream() = default;

Result<std::optional<OutputStream::Event>> OutputStream::Next(int64_t timeout_ms) {
  auto event = stream_->Next(timeout_ms);
  if (!event.ok()) {
    // The client of the stream learns why it broke: the sandbox died, when it did.
    if (auto died = service_->AgentFailed(session_, event.status())) return Unavailable(*died);
    return event.status();
  }
  if (!event->has_value()) return std::optional<Event>();
  agent::AgentStream::Event& e = **event;
  service_->NoteActivity(session_.id);
  Event out;
  switch (e.kind) {
    case agent::AgentStream::Event::Kind::kStdout:
      out.kind = Event::Kind::kStdout;
      break;
    case agent::AgentStream::Event::Kind::kStderr:
      out.kind = Event::Kind::kStderr;
      break;
    case agent::AgentStream::Event::Kind::kExit:
      out.kind = Event::Kind::kExit;
      break;
  }
  out.data = std::move(e.data);
  out.exit = e.exit;
  return std::optional<Event>(std::move(out));
}

Status OutputStream::WriteStdin(std::string_view data) {
  service_->NoteActivity(session_.id);
  return stream_->WriteStdin(data);
}
Result<size_t> OutputStream::WriteSomeStdin(std::string_view data) {
  service_->NoteActivity(session_.id);
  return stream_->WriteSomeStdin(data);
}
Status OutputStream::CloseStdin() { return stream_->CloseStdin(); }
Status OutputStream::Signal(int sig) { return stream_->Signal(sig); }
Status OutputStream::Resize(uint16_t rows, uint16_t cols) { return stream_->Resize(rows, cols); }
int OutputStream::pid() const { return stream_->pid(); }
int OutputStream::fd() const { return stream_->fd(); }

Result<core::ProcessInfo> SandboxAgent::StartProcess(const core::Principal& who,
                                                     std::string_view id,
                                                     const core::ProcessStartRequest& request,
                                                     core::Session* touched) {
  return Single(WithAgent(service_, who, id, touched,
                          [&](agent::AgentClient& c) {
                            return c.Call(agent::MessageType::kProcessStart,
                                          agent::EncodeProcessStartRequest(request));
                          }),
                "process");
}

Result<std::vector<core::ProcessInfo>> SandboxAgent::ListProcesses(const core::Principal& who,
                                                                   std::string_view id,
                                                                   core::Session* touched) {
  return WithAgent(service_, who, id, touched, [](agent::AgentClient& c) {
    return c.Call(agent::MessageType::kProcessList, {});
  });
}

Result<core::ProcessInfo> SandboxAgent::SignalProcess(const core::Principal& who,
                                                      std::string_view id,
                                                      const std::string& selector, int signal,
                                                      core::Session* touched) {
  agent::ProcessSignalRequest req{selector, signal};
  return Single(WithAgent(service_, who, id, touched,
                          [&](agent::AgentClient& c) {
                            return c.Call(agent::MessageType::kProcessSignal,
                                          agent::EncodeProcessSignalRequest(req));
                          }),
                "process");
}

Result<core::ProcessInfo> SandboxAgent::WriteProcessStdin(const core::Principal& who,
                                                          std::string_view id,
                                                          const std::string& selector,
                                                          std::string data, bool close,
                                                          core::Session* touched) {
  agent::ProcessStdinRequest req{selector, std::move(data), close};
  return Single(WithAgent(service_, who, id, touched,
                          [&](agent::AgentClient& c) {
                            return c.Call(agent::MessageType::kProcessStdin,
                                          agent::EncodeProcessStdinRequest(req));
                          }),
                "process");
}

Result<int32_t> SandboxAgent::Interrupt(const core::Principal& who, std::string_view id,
                                        core::Session* touched) {
  ASSIGN_OR_RETURN(auto list, WithAgent(service_, who, id, touched, [](agent::AgentClient& c) {
                     return c.Call(agent::MessageType::kInterrupt, {});
                   }));
  return list.empty() ? 0 : list[0].pid;
}

Result<core::ServiceInfo> SandboxAgent::StartService(const core::Principal& who,
                                                     std::string_view id,
                                                     const core::ServiceSpec& spec,
                                                     core::Session* touched) {
  return Single(WithAgent(service_, who, id, touched,
                          [&](agent::AgentClient& c) {
                            return c.CallServices(agent::MessageType::kServiceStart,
                                                  agent::EncodeServiceSpec(spec));
                          }),
                "service");
}

Result<std::vector<core::ServiceInfo>> SandboxAgent::ListServices(const core::Principal& who,
                                                                  std::string_view id,
                                                                  core::Session* touched) {
  return WithAgent(service_, who, id, touched, [](agent::AgentClient& c) {
    return c.CallServices(agent::MessageType::kServiceList, {});
  });
}

Result<core::ServiceInfo> SandboxAgent::StopService(const core::Principal& who, std::string_view id,
                                                    const std::string& name,
                                                    core::Session* touched) {
  return Single(WithAgent(service_, who, id, touched,
                          [&](agent::AgentClient& c) {
                            return c.CallServices(agent::MessageType::kServiceStop, name);
                          }),
                "service");
}

Result<PortsInside> SandboxAgent::ListPortsInside(const core::Principal& who, std::string_view id) {
  return WithAgent(service_, who, id, nullptr, [](agent::AgentClient& c) -> Result<PortsInside> {
    PortsInside inside;
    ASSIGN_OR_RETURN(inside.listening, c.ListeningPorts());
    ASSIGN_OR_RETURN(inside.services, c.CallServices(agent::MessageType::kServiceList, {}));
    return inside;
  });
}

Result<OutputStream> SandboxAgent::OpenExecStream(const core::Principal& who, std::string_view id,
                                                  const core::StreamExecRequest& request,
                                                  core::Session* touched) {
  core::Session resolved;
  auto target = service_.Agent(who, id, &resolved);
  if (touched) *touched = resolved;
  if (!target.ok()) return target.status();
  auto stream = agent::AgentStream::OpenExec(*target->transport, request);
  if (!stream.ok()) return Failed(service_, target->session, stream.status());
  std::shared_ptr<void> busy = service_.Busy(target->session.id);
  return OutputStream(service_, std::move(target->session),
                      std::make_unique<agent::AgentStream>(std::move(*stream)), std::move(busy));
}

Result<OutputStream> SandboxAgent::AttachProcess(const core::Principal& who, std::string_view id,
                                                 const std::string& selector, bool follow,
                                                 core::Session* touched) {
  core::Session resolved;
  auto target = service_.Agent(who, id, &resolved);
  if (touched) *touched = resolved;
  if (!target.ok()) return target.status();
  agent::ProcessAttachRequest req;
  req.selector = selector;
  req.follow = follow;
  auto stream = agent::AgentStream::Attach(*target->transport, req);
  if (!stream.ok()) return Failed(service_, target->session, stream.status());
  return OutputStream(service_, std::move(target->session),
                      std::make_unique<agent::AgentStream>(std::move(*stream)), nullptr);
}

}  // namespace hutch::controller
