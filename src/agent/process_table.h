// Background processes of a sandbox (POST /v1/sessions/{id}/processes): they belong to the
// agent, not to the connection that started them, so they outlive it, and their output is
// kept in a bounded ring buffer per process that any later connection can replay and follow.
//
// One thread serves every process: it polls their pipes and exit fds, appends output to the
// rings (dropping the oldest bytes when a ring is full — the producer never waits for a
// reader), kills a process group at its timeout (SIGTERM, SIGKILL kKillGraceMs later) and
// wakes the readers through their eventfds.
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <deque>
#include <map>
#include <memory>
#include <mutex>
#include <set>
#include <string>
#include <vector>

#include "agent/protocol.h"
#include "agent/reaper.h"
#include "agent/stream_protocol.h"
#include "common/status.h"
#include "common/unique_fd.h"

namespace hutch::agent {

// One chunk of output in a ring: which stream, and its absolute offset in the process's output.
struct OutputChunk {
  uint64_t offset = 0;
  bool is_stderr = false;
  std::string data;
};

class BackgroundProcess {
 public:
  // Copies output from absolute offset *pos on, at most max_bytes, into *out; moves *pos past
  // it. When *pos is older than the ring, the gap is added to *dropped and reading starts at the
  // ring's oldest byte. Answers the offset just past the newest byte.
  uint64_t Read(uint64_t* pos, size_t max_bytes, std::vector<OutputChunk>* out, uint64_t* dropped);
  ProcessInfo Info();
  // How it ended; exited false while it runs. dropped_bytes is left 0 (per reader).
  ExitInfo Exit();
  // Registers an eventfd written (incremented) on new output and on exit.
  void Subscribe(int event_fd);
  void Unsubscribe(int event_fd);

 private:
  friend class ProcessTable;
  void Append(bool is_stderr, const char* data, size_t n);  // REQUIRES: mu_ held
  void Notify();                                            // REQUIRES: mu_ held

  std::mutex mu_;
  ProcessInfo info_;              // GUARDED_BY(mu_)
  std::deque<OutputChunk> ring_;  // GUARDED_BY(mu_)
  size_t ring_bytes_ = 0;         // GUARDED_BY(mu_)
  uint64_t end_ = 0;              // GUARDED_BY(mu_): offset past the newest byte
  std::set<int> subscribers_;     // GUARDED_BY(mu_)
  int64_t start_ms_ = 0;
  int64_t duration_ms_ = 0;  // GUARDED_BY(mu_)
  // Owned by the table's thread:
  int exit_fd_ = -1;  // the Reaper's
  UniqueFd out_fd_, err_fd_;
  int64_t deadline_ms_ = -1;
  int64_t kill_at_ms_ = -1;
  // Guarded by the table's mutex (writes come from connection threads):
  UniqueFd stdin_fd_;
};

class ProcessTable {
 public:
  ProcessTable(Reaper* reaper, const std::map<std::string, std::string>* session_env);

  // Starts a process; its stdin stays open (see WriteStdin). invalid_argument for a duplicate
  // tag, resource_exhausted beyond kMaxProcesses running.
  // With `retag_ended` (services restarting), an ended process holding the tag gives it up:
  // it is renamed "<tag>~<n>" and stays listed with its output.
  Result<ProcessInfo> Start(const ProcessStartRequest& request, bool retag_ended = false);
  // By decimal pid or tag; nullptr when there is none.
  std::shared_ptr<BackgroundProcess> Find(const std::string& selector);
  std::vector<ProcessInfo> List();
  Result<ProcessInfo> Signal(const std::string& selector, int sig);
  Result<ProcessInfo> WriteStdin(const std::string& selector, const std::string& data, bool close);
  // How many processes still run (activity: a running process keeps a session busy).
  int Running();

  static constexpr size_t kMaxProcesses =
      1024;  // ended ones beyond this are forgotten, oldest first

 private:
  void Run();
  void Wake();
  // Whether request's tag is free, retagging an ended holder with `retag_ended`; whether
  // another process may run. REQUIRES: mu_ held.
  Status Admit(const ProcessStartRequest& request, bool retag_ended);
  // Forgets the oldest ended processes beyond kMaxProcesses. REQUIRES: mu_ held.
  void ForgetEnded();
  // The one pass of Run over a process whose main process was reaped. REQUIRES: called on
  // the table's thread.
  void Finish(BackgroundProcess& p, char* buf, size_t buf_size);

  Reaper* reaper_;
  const std::map<std::string, std::string>* session_env_;
  int wake_fd_ = -1;
  std::once_flag started_;
  std::mutex mu_;
  std::vector<std::shared_ptr<BackgroundProcess>> procs_;  // GUARDED_BY(mu_), in start order
};

}  // namespace hutch::agent
