#include "agent/client.h"

#include <sys/socket.h>

#include <algorithm>
#include <cerrno>
#include <cstring>

#include <fmt/format.h>

#include "agent/frame_io.h"

namespace hutch::agent {

Status StatusFromAgentError(const ErrorMessage& error, std::string_view session_id) {
  std::string message = fmt::format("agent of {}: {}", session_id, error.message);
  switch (error.code) {
    case ErrorCode::kInvalidArgument:
      return InvalidArgument(std::move(message));
    case ErrorCode::kResourceExhausted:
      return ResourceExhausted(std::move(message));
    case ErrorCode::kUnavailable:
      return Unavailable(std::move(message));
    case ErrorCode::kNotFound:
      return NotFound(std::move(message));
    case ErrorCode::kAlreadyExists:
      return Conflict(std::move(message));
    case ErrorCode::kUnauthenticated:
      // The server's own credential for its sandbox: a fault of this server, not the caller's.
      return Internal(
          fmt::format("agent of {} refused this server: {}", session_id, error.message));
    default:
      return Internal(fmt::format("agent of {}: {} ({})", session_id, error.message,
                                  ErrorCodeName(error.code)));
  }
}

Status AgentClient::Failure(std::string_view what, std::string_view detail) const {
  return Unavailable(fmt::format("agent of {} {}: {}", session_id_, what, detail));
}

Result<AgentClient> AgentClient::Connect(const Transport& transport, int64_t timeout_ms) {
  int64_t deadline = MonotonicMs() + timeout_ms;
  ASSIGN_OR_RETURN(UniqueFd fd, transport.Connect(timeout_ms));
  AgentClient client(std::move(fd), transport.session_id());
  std::string error;
  if (WriteFrame(client.fd_.get(), MessageType::kHello, 0,
                 EncodeHello(Hello{kProtocolVersion, "hutch", transport.secret()}), deadline,
                 &error) != IoStatus::kOk) {
    return client.Failure("does not answer", error);
  }
  Frame frame;
  if (ReadFrame(client.fd_.get(), &client.parser_, &frame, deadline, &error) != IoStatus::kOk) {
    return client.Failure("does not answer", error);
  }
  if (frame.type == MessageType::kError) {
    ErrorMessage em;
    if (!DecodeError(frame.payload, &em, &error)) return client.Failure("sent", error);
    return StatusFromAgentError(em, client.session_id_);
  }
  Hello hello;
  if (frame.type != MessageType::kHello || !DecodeHello(frame.payload, &hello, &error)) {
    return client.Failure("sent", "no Hello in answer to ours " + error);
  }
  if (hello.version != kProtocolVersion) {
    return Internal(fmt::format(
        "agent of {} speaks agent protocol {}, this server speaks {}: recreate the session",
        client.session_id_, hello.version, kProtocolVersion));
  }
  client.peer_ = hello.peer;
  return client;
}

Result<core::ExecResult> AgentClient::Exec(const core::ExecRequest& request) {
  uint32_t stream = next_stream_++;
  // Capped at a year so the sum cannot overflow.
  constexpr int64_t kMaxTimeoutMs = int64_t{365} * 24 * 3600 * 1000;
  int64_t deadline =
      request.timeout_ms > 0
          ? MonotonicMs() + std::min(request.timeout_ms, kMaxTimeoutMs) + kExecGraceMs
          : kNoDeadline;
  std::string error;
  if (WriteFrame(fd_.get(), MessageType::kExecRequest, stream, EncodeExecRequest(request), deadline,
                 &error) != IoStatus::kOk) {
    return Failure("does not answer", error);
  }
  for (;;) {
    Frame frame;
    IoStatus st = ReadFrame(fd_.get(), &parser_, &frame, deadline, &error);
    if (st == IoStatus::kTimeout) {
      return Failure("does not answer", fmt::format("no exec result {} ms after the command's "
                                                    "timeout",
                                                    kExecGraceMs));
    }
    if (st != IoStatus::kOk) return Failure("does not answer", error);
    if (frame.stream_id != stream && frame.stream_id != 0) continue;  // not ours
    if (frame.type == MessageType::kError) {
      ErrorMessage em;
      if (!DecodeError(frame.payload, &em, &error)) return Failure("sent", error);
      return StatusFromAgentError(em, session_id_);
    }
    if (frame.type != MessageType::kExecResult) {
      return Internal(fmt::format("agent of {} answered exec with {}", session_id_,
                                  MessageTypeName(frame.type)));
    }
    core::ExecResult result;
    if (!DecodeExecResult(frame.payload, &result, &error)) {
      return Internal(fmt::format("agent of {} sent {}", session_id_, error));
    }
    return result;
  }
}

Status AgentClient::SendRaw(std::string_view bytes) {
  std::string error;
  if (WriteAll(fd_.get(), bytes, MonotonicMs() + 5000, &error) != IoStatus::kOk) {
    return Failure("does not answer", error);
  }
  return Status::Ok();
}

Result<Frame> AgentClient::ReadFrameForTest(int64_t timeout_ms) {
  Frame frame;
  std::string error;
  if (ReadFrame(fd_.get(), &parser_, &frame, MonotonicMs() + timeout_ms, &error) != IoStatus::kOk) {
    return Failure("does not answer", error);
  }
  return frame;
}

Status PingAgent(const Transport& transport, int64_t timeout_ms) {
  auto client = AgentClient::Connect(transport, timeout_ms);
  return client.ok() ? Status::Ok() : client.status();
}

Result<core::ExecResult> ExecOnAgent(const Transport& transport, const core::ExecRequest& request) {
  ASSIGN_OR_RETURN(AgentClient client, AgentClient::Connect(transport));
  return client.Exec(request);
}

}  // namespace hutch::agent

namespace hutch::agent {

Result<std::string> AgentClient::CallRaw(MessageType type, std::string_view payload,
                                         MessageType answer, int64_t timeout_ms) {
  uint32_t stream = next_stream_++;
  int64_t deadline = MonotonicMs() + timeout_ms;
  std::string error;
  if (WriteFrame(fd_.get(), type, stream, payload, deadline, &error) != IoStatus::kOk) {
    return Failure("does not answer", error);
  }
  for (;;) {
    Frame frame;
    if (ReadFrame(fd_.get(), &parser_, &frame, deadline, &error) != IoStatus::kOk) {
      return Failure("does not answer", error);
    }
    if (frame.stream_id != stream && frame.stream_id != 0) continue;
    if (frame.type == MessageType::kError) {
      ErrorMessage em;
      if (!DecodeError(frame.payload, &em, &error)) return Failure("sent", error);
      return StatusFromAgentError(em, session_id_);
    }
    if (frame.type != answer) {
      return Internal(fmt::format("agent of {} answered {} with {}", session_id_,
                                  MessageTypeName(type), MessageTypeName(frame.type)));
    }
    return std::move(frame.payload);
  }
}

Result<std::vector<ProcessInfo>> AgentClient::Call(MessageType type, std::string_view payload,
                                                   int64_t timeout_ms) {
  ASSIGN_OR_RETURN(std::string answer,
                   CallRaw(type, payload, MessageType::kProcessList, timeout_ms));
  std::vector<ProcessInfo> list;
  std::string error;
  if (!DecodeProcessList(answer, &list, &error))
    return Internal(fmt::format("agent of {} sent {}", session_id_, error));
  return list;
}

Result<std::vector<ListeningPort>> AgentClient::ListeningPorts(int64_t timeout_ms) {
  ASSIGN_OR_RETURN(std::string answer,
                   CallRaw(MessageType::kPortList, {}, MessageType::kPortList, timeout_ms));
  std::vector<ListeningPort> list;
  std::string error;
  if (!DecodePortList(answer, &list, &error))
    return Internal(fmt::format("agent of {} sent {}", session_id_, error));
  return list;
}

Result<LogChunk> AgentClient::ReadLog(uint64_t offset, uint32_t max_bytes, int64_t timeout_ms) {
  ASSIGN_OR_RETURN(std::string answer,
                   CallRaw(MessageType::kLogRead, EncodeLogReadRequest({offset, max_bytes}),
                           MessageType::kLogRead, timeout_ms));
  LogChunk chunk;
  std::string error;
  if (!DecodeLogChunk(answer, &chunk, &error))
    return Internal(fmt::format("agent of {} sent {}", session_id_, error));
  return chunk;
}

Result<ActivityBatch> AgentClient::ReadActivity(std::string_view instance, uint64_t after,
                                                int64_t timeout_ms) {
  ASSIGN_OR_RETURN(std::string answer,
                   CallRaw(MessageType::kActivityRead, EncodeActivityRead(instance, after),
                           MessageType::kActivityRead, timeout_ms));
  ActivityBatch batch;
  if (!DecodeActivityBatch(answer, &batch))
    return Internal(fmt::format("agent of {} sent a malformed ActivityRead answer", session_id_));
  return batch;
}

Result<std::vector<ServiceInfo>> AgentClient::CallServices(MessageType type,
                                                           std::string_view payload,
                                                           int64_t timeout_ms) {
  ASSIGN_OR_RETURN(std::string answer,
                   CallRaw(type, payload, MessageType::kServiceList, timeout_ms));
  std::vector<ServiceInfo> list;
  std::string error;
  if (!DecodeServiceList(answer, &list, &error))
    return Internal(fmt::format("agent of {} sent {}", session_id_, error));
  return list;
}

Result<AgentStream> AgentStream::OpenExec(const Transport& transport,
                                          const StreamExecRequest& request) {
  ASSIGN_OR_RETURN(AgentClient client, AgentClient::Connect(transport));
  AgentStream s(std::move(client));
  s.window_ = request.window;
  RETURN_IF_ERROR(s.Send(MessageType::kStreamExec, EncodeStreamExecRequest(request)));
  RETURN_IF_ERROR(s.ReadStarted("StreamExec"));
  return s;
}

Result<AgentStream> AgentStream::OpenTcp(const Transport& transport,
                                         const TcpConnectRequest& request) {
  ASSIGN_OR_RETURN(AgentClient client, AgentClient::Connect(transport));
  AgentStream s(std::move(client));
  s.window_ = request.window;
  RETURN_IF_ERROR(s.Send(MessageType::kTcpConnect, EncodeTcpConnectRequest(request)));
  RETURN_IF_ERROR(s.ReadStarted("TcpConnect"));
  return s;
}

Status AgentStream::ReadStarted(std::string_view what) {
  AgentStream& s = *this;
  // The first answer is Started (or an Error: the command could not start, no such process).
  std::string error;
  Frame frame;
  if (ReadFrame(s.fd(), &s.client_.parser_, &frame, MonotonicMs() + 30000, &error) !=
      IoStatus::kOk) {
    return s.client_.Failure("does not answer", error);
  }
  if (frame.type == MessageType::kError) {
    ErrorMessage em;
    if (!DecodeError(frame.payload, &em, &error)) return s.client_.Failure("sent", error);
    return StatusFromAgentError(em, s.client_.session_id_);
  }
  uint32_t pid = 0;
  if (frame.type != MessageType::kStarted || !DecodeU32(frame.payload, &pid, &error)) {
    return Internal(fmt::format("agent of {} answered {} with {}", s.client_.session_id_, what,
                                MessageTypeName(frame.type)));
  }
  s.pid_ = static_cast<int>(pid);
  return Status::Ok();
}

Result<AgentStream> AgentStream::Attach(const Transport& transport,
                                        const ProcessAttachRequest& request) {
  ASSIGN_OR_RETURN(AgentClient client, AgentClient::Connect(transport));
  AgentStream s(std::move(client));
  s.window_ = request.window;
  RETURN_IF_ERROR(s.Send(MessageType::kProcessAttach, EncodeProcessAttachRequest(request)));
  RETURN_IF_ERROR(s.ReadStarted("ProcessAttach"));
  return s;
}

Status AgentStream::Send(MessageType type, std::string_view payload) {
  std::string error;
  if (WriteFrame(fd(), type, stream_, payload, MonotonicMs() + 30000, &error) != IoStatus::kOk) {
    return client_.Failure("does not answer", error);
  }
  return Status::Ok();
}

Result<bool> AgentStream::Pump(int64_t timeout_ms) {
  std::string error;
  Frame frame;
  IoStatus st = ReadFrame(fd(), &client_.parser_, &frame,
                          timeout_ms < 0 ? kNoDeadline : MonotonicMs() + timeout_ms, &error);
  if (st == IoStatus::kTimeout) return false;
  if (st != IoStatus::kOk) return client_.Failure("does not answer", error);
  if (frame.stream_id != stream_ && frame.stream_id != 0) return true;
  switch (frame.type) {
    case MessageType::kStdout:
    case MessageType::kStderr: {
      Event e;
      e.kind = frame.type == MessageType::kStdout ? Event::Kind::kStdout : Event::Kind::kStderr;
      e.data = std::move(frame.payload);
      pending_.push_back(std::move(e));
      return true;
    }
    case MessageType::kWindow: {
      uint32_t grant = 0;
      if (!DecodeU32(frame.payload, &grant, &error)) return client_.Failure("sent", error);
      stdin_credit_ += grant;
      return true;
    }
    case MessageType::kExit: {
      Event e;
      e.kind = Event::Kind::kExit;
      if (!DecodeExitInfo(frame.payload, &e.exit, &error)) return client_.Failure("sent", error);
      pending_.push_back(std::move(e));
      return true;
    }
    case MessageType::kError: {
      ErrorMessage em;
      if (!DecodeError(frame.payload, &em, &error)) return client_.Failure("sent", error);
      return StatusFromAgentError(em, client_.session_id_);
    }
    default:
      return Internal(fmt::format("agent of {} sent {} on a stream", client_.session_id_,
                                  MessageTypeName(frame.type)));
  }
}

Result<std::optional<AgentStream::Event>> AgentStream::Next(int64_t timeout_ms) {
  if (ended_) return std::optional<Event>();
  // What the caller took last time has been dealt with by now: give its credit back, in
  // batches so that a fast stream does not send a Window per chunk.
  if (to_grant_ >= window_ / 2 || (to_grant_ > 0 && pending_pos_ >= pending_.size())) {
    RETURN_IF_ERROR(Send(MessageType::kWindow, EncodeU32(to_grant_)));
    to_grant_ = 0;
  }
  int64_t deadline = timeout_ms < 0 ? kNoDeadline : MonotonicMs() + timeout_ms;
  while (pending_pos_ >= pending_.size()) {
    pending_.clear();
    pending_pos_ = 0;
    int64_t left = deadline == kNoDeadline ? -1 : std::max<int64_t>(0, deadline - MonotonicMs());
    ASSIGN_OR_RETURN(bool got, Pump(left));
    if (!got) return std::optional<Event>();
  }
  Event e = std::move(pending_[pending_pos_++]);
  if (e.kind == Event::Kind::kExit) {
    ended_ = true;
  } else {
    to_grant_ += static_cast<uint32_t>(e.data.size());
  }
  return std::optional<Event>(std::move(e));
}

Status AgentStream::WriteStdin(std::string_view data) {
  while (!data.empty()) {
    while (stdin_credit_ <= 0) {
      ASSIGN_OR_RETURN(bool got, Pump(60000));
      if (!got) return Unavailable("the command does not read its stdin");
    }
    size_t n = std::min<size_t>({data.size(), kMaxDataChunk, static_cast<size_t>(stdin_credit_)});
    RETURN_IF_ERROR(Send(MessageType::kStdin, data.substr(0, n)));
    stdin_credit_ -= static_cast<int64_t>(n);
    data.remove_prefix(n);
  }
  return Status::Ok();
}

Result<size_t> AgentStream::WriteSomeStdin(std::string_view data) {
  while (stdin_credit_ <= 0) {
    ASSIGN_OR_RETURN(bool got, Pump(0));
    if (!got) return 0;
  }
  size_t n = std::min<size_t>({data.size(), kMaxDataChunk, static_cast<size_t>(stdin_credit_)});
  if (n == 0) return 0;
  RETURN_IF_ERROR(Send(MessageType::kStdin, data.substr(0, n)));
  stdin_credit_ -= static_cast<int64_t>(n);
  return n;
}

Status AgentStream::CloseStdin() { return Send(MessageType::kStdin, {}); }
Status AgentStream::Signal(int sig) { return Send(MessageType::kSignal, EncodeI32(sig)); }
Status AgentStream::Resize(uint16_t rows, uint16_t cols) {
  return Send(MessageType::kResize, EncodeResize(rows, cols));
}

}  // namespace hutch::agent
