// Runs one command to completion inside the sandbox, the way POST …/exec needs it: stdin fed
// from the request, stdout and stderr collected up to a cap, a timeout that kills the whole
// process group, exit code or signal, duration.
#pragma once

#include <map>
#include <string>
#include <utility>

#include "agent/child_stdio.h"
#include "agent/protocol.h"
#include "agent/reaper.h"
#include "common/status.h"
#include "core/exec.h"

namespace hutch::agent {

// Defaults every command gets, under the session's and the request's env.
inline constexpr const char* kDefaultPath =
    "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";
inline constexpr const char* kDefaultHome = "/root";
inline constexpr const char* kDefaultTerm = "xterm";

// Where commands that name no cwd start (the image's workdir, AgentConfig::workdir) when it is
// a directory; kDefaultHome otherwise. Set once, before anything is spawned.
void SetDefaultWorkdir(std::string dir);

// How long a timed-out command's process group has between SIGTERM and SIGKILL.
inline constexpr int64_t kKillGraceMs = 2000;

struct SpawnedCommand {
  pid_t pid = -1;
  int exit_fd = -1;  // owned by the Reaper: readable once reaped, closed by TakeStatus
  int64_t start_ms = 0;
};

// Starts request.argv as RunCommand's child does (below), its fds 0-2 the child's ends of
// *stdio, which are closed on return either way; stdin_data, timeout_ms and max_output_bytes
// are the caller's business. invalid_argument for a bad cwd, resource_exhausted or internal
// when the fork failed. The child is a process group and session leader: pid == pgid.
Result<SpawnedCommand> SpawnCommand(const core::ExecRequest& request,
                                    const std::map<std::string, std::string>& session_env,
                                    Reaper* reaper, ChildStdio* stdio);

// Sends `sig` to the process group `pid` and to `pid` itself (it may not have called setsid
// yet).
void SignalGroup(pid_t pid, int sig);
// SIGKILLs the process group until no member is left (zombies count until the reaper takes
// them). Bounded: a member that moved to its own group escapes the group kill anyway.
void KillGroupUntilGone(pid_t pgid);
// SIGTERM to the group; SIGKILL to what is left after grace_ms. Returns when the group is gone.
void EndGroup(pid_t pgid, int64_t grace_ms);
// SIGKILLs every process of the terminal session `sid` (a command's pid: it is the session's
// leader), in whatever group: an interactive shell's job control puts each job, background
// ones too, in a group of its own, which the group kill misses. A process that left with
// setsid(2) escapes. Does nothing when /proc is not of the agent's pid namespace (an attach
// agent in a target's mounts): its numbers would name other processes.
void KillSession(pid_t sid);

// While it lives, the command's group (or, with a PTY, the terminal's foreground group) is
// among the foreground jobs that InterruptForeground() sends SIGINT to (POST …/interrupt).
class ForegroundScope {
 public:
  ForegroundScope(pid_t pgid, int pty_fd);
  ~ForegroundScope();
  ForegroundScope(const ForegroundScope&) = delete;
  ForegroundScope& operator=(const ForegroundScope&) = delete;

 private:
  std::pair<pid_t, int> entry_;
};
// SIGINT to every foreground job; returns how many were signalled.
int InterruptForeground();

// The child runs in a new session and process group (setsid), with oom_score_adj 500 so the
// OOM killer takes commands before the agent, default signal handling, fds 0-2 on pipes and
// every other fd closed. A missing command exits 127 and one that cannot be executed 126,
// each with a message on stderr, as a shell does.
//
// After the command's main process exits, output already in the pipes is read without
// blocking and collection stops: a background process that keeps a pipe open cannot hold the
// call. On timeout the process group gets SIGTERM, SIGKILL kKillGraceMs later, and the call
// waits until it is gone; the result says timed_out. An error when the command could not be
// started.
Result<core::ExecResult> RunCommand(const core::ExecRequest& request,
                                    const std::map<std::string, std::string>& session_env,
                                    Reaper* reaper);

}  // namespace hutch::agent
