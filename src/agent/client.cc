#include "agent/client.h"

#include <sys/socket.h>
#include <sys/un.h>

#include <cerrno>
#include <cstring>
#include <thread>

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
    default:
      return Internal(fmt::format("agent of {}: {} ({})", session_id, error.message,
                                  ErrorCodeName(error.code)));
  }
}

Status AgentClient::Failure(std::string_view what, std::string_view detail) const {
  return Unavailable(fmt::format("agent of {} {}: {}", session_id_, what, detail));
}

Result<AgentClient> AgentClient::Connect(const std::string& socket_path, std::string session_id,
                                         int64_t timeout_ms) {
  int64_t deadline = MonotonicMs() + timeout_ms;
  sockaddr_un addr;
  memset(&addr, 0, sizeof addr);
  addr.sun_family = AF_UNIX;
  if (socket_path.size() >= sizeof addr.sun_path) {
    return InvalidArgument(
        fmt::format("agent socket path of {} is too long: {}", session_id, socket_path));
  }
  memcpy(addr.sun_path, socket_path.data(), socket_path.size());
  UniqueFd fd;
  for (;;) {
    fd.Reset(socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0));
    if (!fd) return ErrnoError("socket", errno);
    if (connect(fd.get(), reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0) break;
    int err = errno;
    // EAGAIN: the listen backlog is full (the agent is busy); retry until the deadline.
    if (err == EAGAIN && MonotonicMs() < deadline) {
      std::this_thread::sleep_for(std::chrono::milliseconds(1));
      continue;
    }
    return Unavailable(
        fmt::format("agent of {} does not answer: connect: {}", session_id, ErrnoName(err)));
  }
  AgentClient client(std::move(fd), std::move(session_id));
  std::string error;
  if (WriteFrame(client.fd_.get(), MessageType::kHello, 0,
                 EncodeHello(Hello{kProtocolVersion, "hutch"}), deadline,
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
  int64_t deadline =
      request.timeout_ms > 0 ? MonotonicMs() + request.timeout_ms + kExecGraceMs : kNoDeadline;
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

Status PingAgent(const std::string& socket_path, std::string_view session_id, int64_t timeout_ms) {
  auto client = AgentClient::Connect(socket_path, std::string(session_id), timeout_ms);
  return client.ok() ? Status::Ok() : client.status();
}

Result<core::ExecResult> ExecOnAgent(const std::string& socket_path, std::string_view session_id,
                                     const core::ExecRequest& request) {
  ASSIGN_OR_RETURN(AgentClient client, AgentClient::Connect(socket_path, std::string(session_id)));
  return client.Exec(request);
}

}  // namespace hutch::agent
