// The agent's side of one client connection after the Hello exchange: a single-threaded poll
// loop that multiplexes every operation of the connection — run-to-completion exec, streaming
// exec (pipes or a PTY), background process operations and output attaches — and applies the
// per-stream flow control of stream_protocol.h.
//
// Memory per connection is bounded: at most kMaxConnectionBacklog bytes wait to be sent (the
// loop stops reading command output beyond it), and each stream's stdin backlog is bounded by
// the credit the agent granted.
//
// When the connection ends, every streaming exec it started is SIGKILLed (its process group)
// and reaped; background processes are not: they belong to the ProcessTable.
#pragma once

#include <map>
#include <string>

#include "agent/process_table.h"
#include "agent/protocol.h"
#include "agent/reaper.h"
#include "agent/services.h"

namespace hutch::agent {

inline constexpr size_t kMaxConnectionBacklog = 1 << 20;

struct StreamContext {
  const std::map<std::string, std::string>* session_env = nullptr;
  Reaper* reaper = nullptr;
  ProcessTable* processes = nullptr;
  ServiceTable* services = nullptr;
  int log_fd = -1;  // the session log, read-only (LogRead); -1: none
};

// Serves `fd` until the peer closes it or breaks the protocol. `parser` holds bytes already read
// past the Hello.
void ServeStreams(int fd, FrameParser* parser, const StreamContext& ctx);

}  // namespace hutch::agent
