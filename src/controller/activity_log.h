// ActivityLog (docs/workshops.md, "Activity"): makes and stores the activity records of every
// session, and collects the lines programs inside sessions wrote to the message socket (the
// terminal hook's shell.command, hutch-milestone's milestone.*).
//
// Two sources:
// - the server's own: what a user does through the API (exec, file.*, process.*, check.*),
//   recorded by the handler that did it with Record(), and session.* (the store copies those
//   from the transition events, in their transaction);
// - lines from inside: the agent keeps them numbered until read (agent ActivityRead). A thread
//   reads every running session whose activity is recent each `interval` (the others every
//   `idle_every` intervals), and the session service has it read a sandbox just before it stops.
//   Each line is stored with its origin (agent instance and number), and the store skips an
//   origin it has, so a line read twice (a server that died between storing and telling the
//   agent) is stored once; the agent forgets lines only when the next read says they are stored.
//
// Records carry the session's owner and workshop, so readers filter without joins.
// Thread-safe; every method blocks (store, agent): call off network threads.
#pragma once

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <map>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "common/json.h"
#include "core/activity.h"
#include "core/session.h"
#include "drivers/driver.h"
#include "store/store.h"

namespace hutch::controller {

struct ActivityOptions {
  // How often sessions with recent activity are read; the others every idle_every intervals.
  std::chrono::milliseconds interval{1000};
  int idle_every = 30;
  // Records older than this are purged (hourly). 0: kept for ever.
  int64_t retention_days = 30;
};

class ActivityLog {
 public:
  ActivityLog(store::Store& store, drivers::Driver& driver, ActivityOptions options);
  ~ActivityLog();  // stops and joins
  ActivityLog(const ActivityLog&) = delete;
  ActivityLog& operator=(const ActivityLog&) = delete;

  void Start();

  // Records `type` in `s` by `actor`; for shell.command and exec also the git.* and kubectl.*
  // records of the command line (core::ClassifyCommandLine), with data.source the type. Errors
  // are logged: a failed record never fails the request that made it.
  void Record(const core::Session& s, std::string_view type, const std::string& actor,
              std::string command, std::optional<int64_t> exit_code, json::object data = {});

  // Reads and stores `s`'s lines now, and forgets its agent: call before its sandbox goes.
  void Collect(const core::Session& s);

  // For follow streams: returns when a record was stored by this server after the call began,
  // at `deadline`, or within a second (records another server stored are seen that way), or
  // when `cancelled` is set and WakeAll() called.
  void Wait(std::chrono::steady_clock::time_point deadline, const std::atomic<bool>& cancelled);
  void WakeAll();

  // The records of one batch of lines from inside `s` (exposed for tests): each line checked
  // and numbered by its origin; bad lines are left out and logged.
  struct InsideLine {
    uint64_t seq = 0;
    TimePoint at;
    std::string line;
  };
  static std::vector<core::ActivityRecord> RecordsOfLines(const core::Session& s,
                                                          const std::string& instance,
                                                          const std::vector<InsideLine>& lines);

 private:
  void Append(const core::Session& s, std::vector<core::ActivityRecord> records);
  Status CollectOnce(const core::Session& s);
  void CollectAll(bool everyone);
  void Run();

  store::Store& store_;
  drivers::Driver& driver_;
  const ActivityOptions options_;

  std::mutex collect_mu_;  // one read of a session's agent at a time
  // Per session: the agent instance and the last line number stored (what the next read tells
  // the agent it may forget). Lost with the process: the next server reads again from 0, and
  // the store's origins drop what it has already.
  struct Cursor {
    std::string instance;
    uint64_t stored = 0;
    uint64_t dropped = 0;  // lines the agent said it lost, as last logged
  };
  std::map<std::string, Cursor> cursors_;  // GUARDED_BY(collect_mu_)

  std::mutex mu_;
  std::condition_variable cv_;
  uint64_t generation_ = 0;  // GUARDED_BY(mu_): bumped by every stored batch
  bool stop_ = false;        // GUARDED_BY(mu_)
  std::thread thread_;
};

}  // namespace hutch::controller
