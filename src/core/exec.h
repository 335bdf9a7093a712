// What a caller asks to run in a session and what comes back (POST /v1/sessions/{id}/exec).
// Shared by the API, the drivers and the agent protocol. Plain data.
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <vector>

namespace hutch::core {

struct ExecRequest {
  std::vector<std::string> argv;           // `cmd`, or {"/bin/sh", "-c", command}
  std::map<std::string, std::string> env;  // added to the session's env
  std::string cwd;                         // empty: the sandbox's default (/root)
  std::string stdin_data;
  int64_t timeout_ms = 0;              // 0: no timeout
  int64_t max_output_bytes = 1 << 20;  // per stream; the rest is dropped and `truncated` set
};

struct ExecResult {
  int exit_code = -1;  // -1 when killed by a signal
  int signal = 0;      // the signal that ended it, 0 if it exited
  std::string stdout_data;
  std::string stderr_data;
  bool timed_out = false;
  bool truncated = false;
  int64_t duration_ms = 0;
};

}  // namespace hutch::core
