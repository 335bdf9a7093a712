// Runs one command to completion inside the sandbox, the way POST …/exec needs it: stdin fed
// from the request, stdout and stderr collected up to a cap, a timeout that kills the whole
// process group, exit code or signal, duration.
#pragma once

#include <map>
#include <string>

#include "agent/protocol.h"
#include "agent/reaper.h"
#include "core/exec.h"

namespace hutch::agent {

// Defaults every command gets, under the session's and the request's env.
inline constexpr const char* kDefaultPath =
    "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";
inline constexpr const char* kDefaultHome = "/root";
inline constexpr const char* kDefaultTerm = "xterm";

struct CommandOutcome {
  bool ok = false;          // true: `result` holds the command's result
  core::ExecResult result;  // when ok
  ErrorMessage error;       // when !ok: the command could not be started
};

// The child runs in a new session and process group (setsid), with oom_score_adj 500 so the
// OOM killer takes commands before the agent, default signal handling, fds 0-2 on pipes and
// every other fd closed. A missing command exits 127 and one that cannot be executed 126,
// each with a message on stderr, as a shell does.
//
// After the command's main process exits, output already in the pipes is read without
// blocking and collection stops: a background process that keeps a pipe open cannot hold the
// call. On timeout the process group is SIGKILLed and the call waits until it is gone.
CommandOutcome RunCommand(const core::ExecRequest& request,
                          const std::map<std::string, std::string>& session_env, Reaper* reaper);

}  // namespace hutch::agent
