// Commands kept running past the request that started them, reachable by id while they run:
// E2B's envd processes (api/e2b_processes.h: start, drop the stream, Connect again later) and
// the detachable terminals of …/terminals (api/terminal_handlers.cc: a shell with a scrollback
// that outlives its WebSocket). One core for both, so neither keeps a copy of the other.
//
// Each process is a streaming exec through the controller's facade (SandboxAgent's
// OutputStream, with a PTY when asked), read by a thread of its own that hands every event to
// the subscriptions of the time and, when the process keeps one, appends the output to a
// bounded scrollback that a new subscription may get first. Ending a process (End, Clear)
// closes its agent stream, which makes the agent kill the command's process group, as closing
// an exec WebSocket does.
#pragma once

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "common/status.h"
#include "common/time.h"
#include "controller/sandbox_agent.h"
#include "core/process.h"

namespace hutch::controller {

class SessionService;

struct LiveEvent {
  enum class Kind { kStdout, kStderr, kEnd } kind = Kind::kEnd;
  std::string data;
  core::ExitInfo exit;
  std::string error;  // kEnd: the agent went away, or the process was ended (End)
};

// One reader of a process's events, from when it subscribed. Blocking readers Wait; an
// asynchronous one (a WebSocket) sets a notify callback and takes what came with TakeAll.
class LiveSubscription {
 public:
  // `max_pending_bytes`: a reader that falls this far behind is cancelled (overflowed()) rather
  // than holding an unbounded queue; 0: no bound.
  explicit LiveSubscription(size_t max_pending_bytes = 0, std::function<void()> notify = {})
      : max_pending_(max_pending_bytes), notify_(std::move(notify)) {}
  // The next event within timeout_ms; nullopt on timeout or once cancelled. After kEnd nothing
  // more comes.
  std::optional<LiveEvent> Wait(int64_t timeout_ms);
  // Every event queued now (none once cancelled).
  std::vector<LiveEvent> TakeAll();
  void Cancel();
  bool cancelled() const;
  bool overflowed() const;
  void Push(LiveEvent e);

 private:
  const size_t max_pending_;
  const std::function<void()> notify_;  // called after every Push and on Cancel
  mutable std::mutex mu_;
  std::condition_variable cv_;
  std::deque<LiveEvent> events_;
  size_t pending_ = 0;
  bool cancelled_ = false;
  bool overflowed_ = false;
};

// The last `capacity` bytes of a process's output.
class Scrollback {
 public:
  explicit Scrollback(size_t capacity) : buf_(capacity) {}
  void Append(std::string_view data);
  // The kept bytes in order; once older output was dropped, from the first line start in the
  // first 4 KiB (a replay does not begin inside a line or an escape sequence when it can help).
  std::string Snapshot() const;
  size_t size() const { return size_; }

 private:
  std::vector<char> buf_;
  size_t start_ = 0, size_ = 0;
  bool wrapped_ = false;
};

struct LiveOptions {
  std::string id;   // a terminal's id (term_…); empty for E2B's processes (found by pid)
  std::string tag;  // E2B's tag
  std::string name;
  size_t scrollback_bytes = 0;  // 0: no scrollback
};

class LiveProcess {
 public:
  LiveProcess(SessionService* service, core::StreamExecRequest request, LiveOptions options,
              OutputStream stream);
  ~LiveProcess();
  LiveProcess(const LiveProcess&) = delete;
  LiveProcess& operator=(const LiveProcess&) = delete;

  int pid() const { return pid_; }
  const std::string& session_id() const { return session_id_; }
  const std::string& session_owner() const { return session_owner_; }
  const core::StreamExecRequest& request() const { return request_; }
  const LiveOptions& options() const { return options_; }
  TimePoint created_at() const { return created_at_; }
  bool ended() const;
  TimePoint last_activity() const;
  std::pair<uint16_t, uint16_t> size() const;

  // A new reader (first given the scrollback as one kStdout event when `replay`); nullptr when
  // the process has ended already.
  std::shared_ptr<LiveSubscription> Subscribe(bool replay = false, size_t max_pending_bytes = 0,
                                              std::function<void()> notify = {});
  // Clients attached now: the session is busy while there is one; a process with none since
  // DetachedSince() is detached.
  void Attach();
  void Detach();
  int attached() const;
  std::optional<TimePoint> DetachedSince() const;

  // Blocks (up to a minute) until the command took all of `data`.
  Status WriteInput(std::string_view data);
  // As much of `data` as the agent takes now; maybe 0 (then try again soon).
  Result<size_t> WriteSomeInput(std::string_view data);
  Status CloseStdin();
  Status Signal(int sig);
  Status Resize(uint16_t rows, uint16_t cols);
  // Starts the reading thread (after the first Subscribe, so the starter misses nothing).
  void Run();
  // Stops reading, closes the agent stream (the agent kills the command's process group) and
  // hands the subscriptions a kEnd with `why`. Blocks until the reader stopped.
  void End(const std::string& why);

 private:
  void Pump();
  void Publish(LiveEvent e);

  SessionService* const service_;  // null: the session's busy count is not kept (E2B)
  const std::string session_id_;
  const std::string session_owner_;
  const core::StreamExecRequest request_;
  const LiveOptions options_;
  const TimePoint created_at_;
  const int pid_;
  std::mutex io_mu_;  // the stream: the reader and the writers take turns
  std::optional<OutputStream> stream_;
  mutable std::mutex mu_;
  std::vector<std::weak_ptr<LiveSubscription>> subscribers_;
  Scrollback scrollback_;
  bool ended_ = false;
  TimePoint last_activity_;
  uint16_t rows_, cols_;
  int attached_ = 0;
  std::optional<TimePoint> detached_since_;
  std::shared_ptr<void> busy_;  // held while a client is attached
  std::atomic<bool> stop_{false};
  std::thread thread_;
};

class LiveProcessTable {
 public:
  struct Options {
    // Busy counting for attached clients (terminals); null for E2B's processes.
    SessionService* service = nullptr;
    size_t scrollback_bytes = 0;
    // Per session, at most this many processes at once (resource_exhausted past it); 0: any.
    size_t max_per_session = 0;
  };
  LiveProcessTable() : LiveProcessTable(Options{}) {}
  explicit LiveProcessTable(Options options) : options_(options) {}
  ~LiveProcessTable();

  // Starts `request` in the session and subscribes the caller (when `subscribe`) before any
  // output is read. `close_stdin`: the command reads end-of-file at once.
  Result<std::pair<std::shared_ptr<LiveProcess>, std::shared_ptr<LiveSubscription>>> Start(
      SandboxAgent& agent, const core::Principal& who, const std::string& session_id,
      const core::StreamExecRequest& request, LiveOptions options, bool close_stdin, bool subscribe,
      core::Session* touched = nullptr);
  // The live process of the session with that pid (or tag, when pid is 0); not_found otherwise.
  Result<std::shared_ptr<LiveProcess>> Find(const std::string& session_id, uint32_t pid,
                                            const std::string& tag);
  // The live process of the session with that id (term_…); not_found otherwise.
  Result<std::shared_ptr<LiveProcess>> FindById(const std::string& session_id,
                                                const std::string& id);
  std::vector<std::shared_ptr<LiveProcess>> List(const std::string& session_id);
  // Ends the process with that id; not_found when the session has none.
  Status End(const std::string& session_id, const std::string& id, const std::string& why);
  // Ends the processes nobody was attached to for `detached_for`, and drops the ended ones
  // (the reconciler's tick). Answers those it ended.
  std::vector<std::shared_ptr<LiveProcess>> EndDetached(std::chrono::seconds detached_for);
  // Ends and forgets every process (server stop: before the session service they report to
  // goes).
  void Clear();
  size_t size();

 private:
  void ReapLocked();
  const Options options_;
  std::mutex mu_;
  std::vector<std::shared_ptr<LiveProcess>> processes_;
};

}  // namespace hutch::controller
