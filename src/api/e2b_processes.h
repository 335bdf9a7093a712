// The processes the envd part of the E2B API started (process.Process/Start), kept reachable
// by pid after the call that started them ends: E2B's clients start a command, drop the stream
// (`background: true`, disconnect), and later Connect to it again, send input, resize its
// terminal or signal it, each in a request of its own.
//
// Each process is a streaming exec through the controller's facade (SandboxAgent's
// OutputStream, with a PTY when asked), read by a thread of its own that hands every event to
// the streams subscribed at the time (Start's, any Connect's). A process leaves the table when
// it ended and its events were handed on, and all of them when the table goes (server stop).
#pragma once

#include <condition_variable>
#include <cstdint>
#include <deque>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "common/status.h"
#include "controller/sandbox_agent.h"
#include "core/process.h"

namespace hutch::api::e2b {

struct ProcessSpec {
  std::string cmd;
  std::vector<std::string> args;
  std::map<std::string, std::string> envs;
  std::string cwd;
  std::string tag;
  bool pty = false;
  uint16_t rows = 24, cols = 80;
  bool stdin = false;  // keep stdin open for SendInput
};

struct ProcessEvent {
  enum class Kind { kStdout, kStderr, kPty, kEnd } kind = Kind::kEnd;
  std::string data;
  core::ExitInfo exit;
  std::string error;  // kEnd: the agent went away
};

// One reader of a process's events, from when it subscribed.
class Subscription {
 public:
  // The next event within timeout_ms; nullopt on timeout or once cancelled. After kEnd nothing
  // more comes.
  std::optional<ProcessEvent> Wait(int64_t timeout_ms);
  void Cancel();
  void Push(ProcessEvent e);

 private:
  std::mutex mu_;
  std::condition_variable cv_;
  std::deque<ProcessEvent> events_;
  bool cancelled_ = false;
};

class Process {
 public:
  Process(std::string session_id, ProcessSpec spec, controller::OutputStream stream);
  ~Process();
  Process(const Process&) = delete;
  Process& operator=(const Process&) = delete;

  int pid() const { return pid_; }
  const std::string& session_id() const { return session_id_; }
  const ProcessSpec& spec() const { return spec_; }
  bool ended() const;

  // A new reader; nullptr when the process has ended already.
  std::shared_ptr<Subscription> Subscribe();
  Status WriteInput(std::string_view data);
  Status CloseStdin();
  Status Signal(int sig);
  Status Resize(uint16_t rows, uint16_t cols);
  // Starts the reading thread (after the first Subscribe, so Start's stream misses nothing).
  void Run();

 private:
  void Pump();
  void Publish(ProcessEvent e);

  const std::string session_id_;
  const ProcessSpec spec_;
  const int pid_;
  std::mutex io_mu_;  // the stream: the reader and the writers take turns
  controller::OutputStream stream_;
  mutable std::mutex mu_;
  std::vector<std::weak_ptr<Subscription>> subscribers_;
  bool ended_ = false;
  std::atomic<bool> stop_{false};
  std::thread thread_;
};

class ProcessTable {
 public:
  ProcessTable() = default;
  ~ProcessTable();

  // Starts `spec` in the session and subscribes the caller before any output is read.
  Result<std::pair<std::shared_ptr<Process>, std::shared_ptr<Subscription>>> Start(
      controller::SandboxAgent& agent, const core::Principal& who, const std::string& session_id,
      const ProcessSpec& spec);
  // The live process of the session with that pid (or tag, when pid is 0); not_found otherwise.
  Result<std::shared_ptr<Process>> Find(const std::string& session_id, uint32_t pid,
                                        const std::string& tag);
  std::vector<std::shared_ptr<Process>> List(const std::string& session_id);
  // Stops reading every process and forgets them (server stop: before the session service
  // they report to goes). The processes themselves run on in their sandboxes.
  void Clear();

 private:
  void ReapLocked();
  std::mutex mu_;
  std::vector<std::shared_ptr<Process>> processes_;
};

}  // namespace hutch::api::e2b
