// The blocking side of the facade between api/ and a session's agent (the asynchronous side is
// agent_channel.h): one method per thing a user does inside a running session through a
// request/answer call or a stream read on the blocking pool — background processes, services,
// the ports listening inside, streaming exec and process output for SSE. It resolves the
// session (its owner's, running: conflict otherwise), connects through the transport its driver
// hands out (the one blocking client, agent/client.h, underneath), counts activity, keeps the
// session busy while a command streams, and reports an agent that stopped answering
// (SessionService::AgentFailed) — in this one place, so api/ speaks no agent protocol.
//
// Every method blocks: call it off the network threads. `touched`, when given, receives the
// session that was resolved (for the audit trail), also when the call then fails.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "common/status.h"
#include "core/principal.h"
#include "core/process.h"
#include "core/service.h"
#include "core/session.h"

namespace hutch::agent {
class AgentStream;  // agent/client.h
}  // namespace hutch::agent

namespace hutch::controller {

class SessionService;

// The output of a streaming exec or of a process attach, read on the blocking pool. The agent
// gets its credit back as events are taken, so at most one window of output waits here.
class OutputStream {
 public:
  struct Event {
    enum class Kind { kStdout, kStderr, kExit } kind = Kind::kExit;
    std::string data;
    core::ExitInfo exit;
  };

  OutputStream(OutputStream&&) noexcept;
  OutputStream& operator=(OutputStream&&) noexcept;
  ~OutputStream();

  // The next event, nullopt when none came within timeout_ms; after kExit the stream is over.
  // An error (the agent went away) has been reported to the session service already.
  Result<std::optional<Event>> Next(int64_t timeout_ms);
  const core::Session& session() const { return session_; }

  // The command's side of a streaming exec (E2B's envd keeps processes it started reachable by
  // pid: api/e2b_processes.h). Not thread-safe with Next(): callers serialize them. pid() is the
  // pid inside the sandbox; fd() the agent connection, to poll for output without reading.
  Status WriteStdin(std::string_view data);
  // As much of `data` as the agent takes now (agent::AgentStream::WriteSomeStdin); maybe 0.
  Result<size_t> WriteSomeStdin(std::string_view data);
  Status CloseStdin();
  Status Signal(int sig);
  Status Resize(uint16_t rows, uint16_t cols);
  int pid() const;
  int fd() const;
  // The session stops counting as busy for this stream: a detached terminal waits for its
  // owner, it is no running job (controller/live_processes.h holds busy while one attaches).
  void DropBusy() { busy_.reset(); }

 private:
  friend class SandboxAgent;
  OutputStream(SessionService& service, core::Session session,
               std::unique_ptr<agent::AgentStream> stream, std::shared_ptr<void> busy);

  SessionService* service_;
  core::Session session_;
  std::unique_ptr<agent::AgentStream> stream_;
  std::shared_ptr<void> busy_;  // a streaming command keeps the session busy
};

// What listens inside a running session and which services it runs (GET …/ports).
struct PortsInside {
  std::vector<core::ListeningPort> listening;
  std::vector<core::ServiceInfo> services;
};

class SandboxAgent {
 public:
  explicit SandboxAgent(SessionService& service) : service_(service) {}

  // Background processes (POST/GET …/processes, …/signal, …/stdin, …/interrupt). A selector
  // is a pid in decimal or a tag; not_found when no process has it.
  Result<core::ProcessInfo> StartProcess(const core::Principal& who, std::string_view id,
                                         const core::ProcessStartRequest& request,
                                         core::Session* touched = nullptr);
  Result<std::vector<core::ProcessInfo>> ListProcesses(const core::Principal& who,
                                                       std::string_view id,
                                                       core::Session* touched = nullptr);
  Result<core::ProcessInfo> SignalProcess(const core::Principal& who, std::string_view id,
                                          const std::string& selector, int signal,
                                          core::Session* touched = nullptr);
  Result<core::ProcessInfo> WriteProcessStdin(const core::Principal& who, std::string_view id,
                                              const std::string& selector, std::string data,
                                              bool close, core::Session* touched = nullptr);
  // SIGINT to every foreground command: the pid of the one interrupted, 0 when none ran.
  Result<int32_t> Interrupt(const core::Principal& who, std::string_view id,
                            core::Session* touched = nullptr);

  // Services (POST/GET/DELETE …/services); conflict when one of that name exists.
  Result<core::ServiceInfo> StartService(const core::Principal& who, std::string_view id,
                                         const core::ServiceSpec& spec,
                                         core::Session* touched = nullptr);
  Result<std::vector<core::ServiceInfo>> ListServices(const core::Principal& who,
                                                      std::string_view id,
                                                      core::Session* touched = nullptr);
  Result<core::ServiceInfo> StopService(const core::Principal& who, std::string_view id,
                                        const std::string& name, core::Session* touched = nullptr);

  // The sockets listening in the session and the services it runs, over one connection.
  // unimplemented from an agent older than the port list.
  Result<PortsInside> ListPortsInside(const core::Principal& who, std::string_view id);

  // A command whose output streams; the session is busy while the stream lives. The agent's
  // error (a bad cwd, a full pids limit) is the answer.
  Result<OutputStream> OpenExecStream(const core::Principal& who, std::string_view id,
                                      const core::StreamExecRequest& request,
                                      core::Session* touched = nullptr);
  // Replays a background process's output ring and, with follow, streams what comes after
  // until it ends. not_found (before any output) when there is no such process.
  Result<OutputStream> AttachProcess(const core::Principal& who, std::string_view id,
                                     const std::string& selector, bool follow,
                                     core::Session* touched = nullptr);

 private:
  SessionService& service_;
};

}  // namespace hutch::controller
