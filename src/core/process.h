// What a session's processes, services and ports look like to the API: the values that the
// agent protocol carries (agent/stream_protocol.h encodes and decodes them) and that api/
// answers as JSON, without api/ knowing the protocol.
//
// Plain data, header-only: the static agent's protocol library (which has no hutch_core) uses
// these too.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "core/exec.h"
#include "core/service.h"

namespace hutch::core {

// Output credit a streaming reader gives when it has no better idea: at most this many bytes
// of a command's output wait for the reader.
inline constexpr uint32_t kDefaultStreamWindow = 256 * 1024;
inline constexpr size_t kMaxTagLen = 128;

// Whether a process tag is acceptable: 1..kMaxTagLen of [A-Za-z0-9._-], not all digits (a pid).
inline bool IsValidTag(std::string_view tag) {
  if (tag.empty() || tag.size() > kMaxTagLen) return false;
  bool all_digits = true;
  for (char c : tag) {
    bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              c == '.' || c == '_' || c == '-';
    if (!ok) return false;
    if (c < '0' || c > '9') all_digits = false;
  }
  return !all_digits;
}

// A command whose output streams (SSE exec, the exec WebSocket, terminals).
struct StreamExecRequest {
  ExecRequest exec;  // exec.stdin_data is written to stdin first
  bool tty = false;  // run on a new PTY: one output stream, the PTY is its controlling tty
  uint16_t rows = 24;
  uint16_t cols = 80;
  uint32_t window = kDefaultStreamWindow;  // initial output credit
};

// How a stream or a process ended (or, for an attach without follow, that it still runs).
struct ExitInfo {
  bool exited = true;  // false: the process still runs (attach without follow)
  int32_t exit_code = -1;
  int32_t signal = 0;
  bool timed_out = false;
  int64_t duration_ms = 0;
  uint64_t dropped_bytes = 0;  // output lost from a ring buffer before this reader got it
};

// A background process (POST …/processes).
struct ProcessInfo {
  int32_t pid = 0;
  std::string tag;
  std::vector<std::string> argv;
  bool running = true;
  int32_t exit_code = -1;
  int32_t signal = 0;
  bool timed_out = false;
  int64_t started_unix_ms = 0;
  int64_t ended_unix_ms = 0;   // 0 while running
  uint64_t output_bytes = 0;   // written so far, both streams
  uint64_t dropped_bytes = 0;  // of those, dropped from the ring
};

struct ProcessStartRequest {
  ExecRequest exec;  // exec.stdin_data goes to stdin first; stdin stays open
  std::string tag;   // unique among the session's processes; may be empty
};

// A supervised service as it runs now (GET …/services).
struct ServiceInfo {
  ServiceSpec spec;  // exec.stdin_data and env are not sent back
  // starting (the first instance runs, not yet healthy when there is a check), running,
  // backoff (waiting to restart), exited (ended 0, no restart), failed, stopping.
  std::string state;
  std::string health;  // none | starting | healthy | unhealthy
  std::string health_message;
  int32_t pid = 0;  // the current instance; 0 while none runs
  uint32_t restarts = 0;
  int32_t last_exit_code = -1;  // of the last instance that ended; -1: killed or none
  int32_t last_signal = 0;
  int64_t started_unix_ms = 0;  // the current (or last) instance
  int64_t next_restart_unix_ms = 0;
};

// A TCP socket listening in the sandbox's network namespace.
struct ListeningPort {
  uint16_t port = 0;
  std::string address;  // "127.0.0.1", "0.0.0.0", "::", "::1", …
  bool operator==(const ListeningPort&) const = default;
};

// A piece of the session's log (the agent's and its setup's output), read from `offset`;
// `size` is the log's length when it was read, so a follower knows whether more is waiting.
struct LogChunk {
  std::string data;
  uint64_t size = 0;
};

}  // namespace hutch::core
