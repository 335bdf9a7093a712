// Process plumbing for the benchmark: interrupt handling, spawning peers with posix_spawn and
// timing them, running a helper command for its output, and removing temp trees.
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <string>
#include <vector>

#include "common/status.h"

namespace hutch::bench {

// SIGINT, SIGTERM and SIGHUP set a flag instead of killing the bench, so that it can finish the
// round in flight and then delete what it made (sessions, containers, temp dirs). The handler
// resets itself: a second Ctrl-C kills the bench at once.
void InstallInterruptHandlers();
bool Interrupted();

// An argv built once, so building it is not part of a timed region.
class Argv {
 public:
  explicit Argv(std::vector<std::string> args);
  Argv(const Argv&) = delete;
  Argv& operator=(const Argv&) = delete;

  char* const* data() const { return ptrs_.data(); }
  const std::string& path() const { return args_.front(); }
  // "runc --root /tmp/x run …", for reports.
  std::string ToString() const;

 private:
  std::vector<std::string> args_;
  std::vector<char*> ptrs_;
};

struct TimedRun {
  int wait_status = 0;     // as waitpid reports it
  int64_t elapsed_ns = 0;  // from before posix_spawn to after waitpid, CLOCK_MONOTONIC
};

// Runs `argv` (argv[0] an absolute path) with stdin and stdout on /dev/null and stderr into
// `stderr_path` (truncated), in a process group of its own so that a terminal's Ctrl-C reaches
// only the bench, and waits for it. The file actions are prepared before the clock starts; the
// timed region is posix_spawn + waitpid and nothing else.
Result<TimedRun> SpawnTimed(const Argv& argv, const std::string& stderr_path);

// Runs `args` to completion and answers what it wrote to stdout; stderr goes to `stderr_path`
// (truncated) or, when empty, to /dev/null. internal when it does not exit 0.
Result<std::string> RunCapture(const std::vector<std::string>& args,
                               const std::string& stderr_path = "");

// "exited with status 1: <first line of stderr_path>", "killed by signal 9".
std::string DescribeWaitStatus(int wait_status, const std::string& stderr_path = "");

// The first of `candidates` that is an executable file, else `name` looked up in PATH; empty
// when there is none.
std::string FindExecutable(const std::string& name, const std::vector<std::string>& candidates);

// rm -rf that never follows symlinks and never crosses into another mount. Answers whether
// `path` is gone afterwards.
bool RemoveTree(const std::string& path);

// The file's contents, or "" when it cannot be read.
std::string ReadFileOrEmpty(const std::string& path);

// "create → first exec 12/50" on one self-rewriting stderr line, only when stderr is a terminal
// (never into a pipe or a log). Call Update between timed regions, never inside one.
class Progress {
 public:
  Progress(std::string label, int total);
  ~Progress();  // clears the line
  Progress(const Progress&) = delete;
  Progress& operator=(const Progress&) = delete;
  void Update(int done);

 private:
  std::string label_;
  int total_;
  bool enabled_;
};

}  // namespace hutch::bench
