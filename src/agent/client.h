// The host side of the agent protocol: connects to a sandbox's hutch-agent over its unix socket.
// Blocking; call off network threads. One connection per call is fine for now (connect +
// Hello over a local unix socket costs tens of microseconds).
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

#include "agent/protocol.h"
#include "common/status.h"
#include "common/unique_fd.h"
#include "core/exec.h"

namespace hutch::agent {

// How long to wait for connect + Hello.
inline constexpr int64_t kConnectTimeoutMs = 5000;
// Extra time an exec call waits beyond the command's own timeout (killing a process group and
// sending up to 32 MiB of output take a moment).
inline constexpr int64_t kExecGraceMs = 10000;

class AgentClient {
 public:
  // Connects and exchanges Hello. `session_id` names the session in error messages.
  // Unavailable when nobody listens: "agent of ses_x does not answer: connect: ECONNREFUSED".
  static Result<AgentClient> Connect(const std::string& socket_path, std::string session_id,
                                     int64_t timeout_ms = kConnectTimeoutMs);

  // Runs a command to completion. Waits request.timeout_ms + kExecGraceMs, or without limit
  // when the request has no timeout (a dead agent still ends the wait: its socket closes).
  Result<core::ExecResult> Exec(const core::ExecRequest& request);

  // Sends `frame` bytes as they are: for tests of the agent's handling of bad input.
  Status SendRaw(std::string_view bytes);
  // Reads the next frame (tests).
  Result<Frame> ReadFrameForTest(int64_t timeout_ms);

  const std::string& peer() const { return peer_; }

 private:
  AgentClient(UniqueFd fd, std::string session_id)
      : fd_(std::move(fd)), session_id_(std::move(session_id)) {}
  Status Failure(std::string_view what, std::string_view detail) const;

  UniqueFd fd_;
  std::string session_id_;
  std::string peer_;
  FrameParser parser_;
  uint32_t next_stream_ = 1;
};

// Connects and says Hello: whether the agent answers.
Status PingAgent(const std::string& socket_path, std::string_view session_id,
                 int64_t timeout_ms = kConnectTimeoutMs);

// Connect + Exec.
Result<core::ExecResult> ExecOnAgent(const std::string& socket_path, std::string_view session_id,
                                     const core::ExecRequest& request);

// The Status for an Error message from the agent.
Status StatusFromAgentError(const ErrorMessage& error, std::string_view session_id);

}  // namespace hutch::agent
