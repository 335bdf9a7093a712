// The host side of the agent protocol: connects to a sandbox's hutch-agent over the transport its
// driver handed out (transport.h). Blocking; call off network threads. One connection per call is
// fine for now (connect + Hello over a local unix socket costs tens of microseconds).
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "agent/bridge_protocol.h"
#include "agent/protocol.h"
#include "agent/stream_protocol.h"
#include "agent/transport.h"
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
  // Connects and exchanges Hello. Unavailable when nobody listens: "agent of ses_x does not
  // answer: connect: ECONNREFUSED".
  static Result<AgentClient> Connect(const Transport& transport,
                                     int64_t timeout_ms = kConnectTimeoutMs);

  // Runs a command to completion. Waits request.timeout_ms + kExecGraceMs, or without limit
  // when the request has no timeout (a dead agent still ends the wait: its socket closes).
  Result<core::ExecResult> Exec(const core::ExecRequest& request);

  // One request on a new stream that answers one frame (ProcessStart, ProcessList,
  // ProcessSignal, ProcessStdin, Interrupt): the answer's ProcessList.
  Result<std::vector<ProcessInfo>> Call(MessageType type, std::string_view payload,
                                        int64_t timeout_ms = 30000);
  // The same for ServiceStart, ServiceList and ServiceStop: the answer's ServiceList.
  Result<std::vector<ServiceInfo>> CallServices(MessageType type, std::string_view payload,
                                                int64_t timeout_ms = 30000);

  // The TCP ports listening in the sandbox (PortList). unimplemented from an agent older than
  // the message.
  Result<std::vector<ListeningPort>> ListeningPorts(int64_t timeout_ms = 5000);

  // At most max_bytes of the session log from `offset` (LogRead). An internal error
  // ("unsupported") from an agent older than the message or one its driver gave no log.
  Result<LogChunk> ReadLog(uint64_t offset, uint32_t max_bytes, int64_t timeout_ms = 5000);

  // The activity lines past `after` of agent `instance` (ActivityRead; bridge_protocol.h): that
  // agent forgets those up to it; another answers from its first.
  Result<ActivityBatch> ReadActivity(std::string_view instance, uint64_t after,
                                     int64_t timeout_ms = 5000);

  // Sends `frame` bytes as they are: for tests of the agent's handling of bad input.
  Status SendRaw(std::string_view bytes);
  // Reads the next frame (tests).
  Result<Frame> ReadFrameForTest(int64_t timeout_ms);

  const std::string& peer() const { return peer_; }
  int fd() const { return fd_.get(); }
  const std::string& session_id() const { return session_id_; }

 private:
  // Sends one request on a new stream and answers the payload of its one answer, which must
  // be of type `answer` (an Error is its Status).
  Result<std::string> CallRaw(MessageType type, std::string_view payload, MessageType answer,
                              int64_t timeout_ms);

  friend class AgentStream;
  friend class FileCall;
  friend class MessageBridgeClient;
  AgentClient(UniqueFd fd, std::string session_id)
      : fd_(std::move(fd)), session_id_(std::move(session_id)) {}
  Status Failure(std::string_view what, std::string_view detail) const;

  UniqueFd fd_;
  std::string session_id_;
  std::string peer_;
  FrameParser parser_;
  uint32_t next_stream_ = 1;
};

// One streaming operation (streaming exec or a process output attach) on a connection of its
// own, blocking: for callers on the blocking pool (SSE answers, the CLI-facing follow). It
// grants output credit back as the caller takes events, so at most `window` bytes wait.
class AgentStream {
 public:
  struct Event {
    enum class Kind { kStdout, kStderr, kExit } kind = Kind::kExit;
    std::string data;
    ExitInfo exit;
  };

  static Result<AgentStream> OpenExec(const Transport& transport, const StreamExecRequest& request);
  // A TCP relay to 127.0.0.1:request.port inside the sandbox: WriteStdin sends bytes,
  // CloseStdin half-closes, Next yields kStdout events and a kExit when the peer closed.
  // unavailable when nothing listens there.
  static Result<AgentStream> OpenTcp(const Transport& transport, const TcpConnectRequest& request);
  // not_found when there is no such process.
  static Result<AgentStream> Attach(const Transport& transport,
                                    const ProcessAttachRequest& request);

  // The next event; nullopt when none came within timeout_ms. After the Exit event the stream
  // is over. unavailable when the agent went away.
  Result<std::optional<Event>> Next(int64_t timeout_ms);
  // Blocks until the agent granted the credit (reading and queueing output meanwhile).
  Status WriteStdin(std::string_view data);
  // Writes as much of `data` as the agent's stdin credit allows now, without waiting for more
  // (it reads at most the frames already there): the bytes written, maybe 0. For a caller that
  // must keep taking output while a large input goes in (api/e2b_processes.h).
  Result<size_t> WriteSomeStdin(std::string_view data);
  Status CloseStdin();
  Status Signal(int sig);
  Status Resize(uint16_t rows, uint16_t cols);
  int pid() const { return pid_; }
  int fd() const { return client_.fd(); }

 private:
  explicit AgentStream(AgentClient client) : client_(std::move(client)) {}
  Status Send(MessageType type, std::string_view payload);
  // Reads the Started answer of StreamExec or ProcessAttach (an Error is its Status).
  Status ReadStarted(std::string_view what);
  // Reads one frame of this stream into pending_ / credit (waits up to timeout_ms); false on
  // timeout.
  Result<bool> Pump(int64_t timeout_ms);

  AgentClient client_;
  uint32_t stream_ = 1;
  int pid_ = 0;
  uint32_t window_ = kDefaultWindow;
  uint32_t to_grant_ = 0;  // output bytes handed to the caller, not yet granted back
  int64_t stdin_credit_ = kStdinWindow;
  std::vector<Event> pending_;
  size_t pending_pos_ = 0;
  bool ended_ = false;
};

// Connects and says Hello: whether the agent answers.
Status PingAgent(const Transport& transport, int64_t timeout_ms = kConnectTimeoutMs);

// Connect + Exec.
Result<core::ExecResult> ExecOnAgent(const Transport& transport, const core::ExecRequest& request);

// The Status for an Error message from the agent.
Status StatusFromAgentError(const ErrorMessage& error, std::string_view session_id);

}  // namespace hutch::agent
