// The server's end of the message relay (message_bridge.h): one connection to a sandbox's agent
// that carries the lines of every agent process connected to the in-sandbox message socket.
// Blocking; one thread uses it at a time.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "agent/client.h"
#include "agent/transport.h"
#include "common/status.h"

namespace hutch::agent {

class MessageBridgeClient {
 public:
  struct Event {
    enum class Kind { kLine, kClosed } kind = Kind::kLine;
    uint32_t conn = 0;  // the local connection
    std::string line;   // kLine: one line, without its newline
  };

  // Connects and attaches; the agent then replays the first line of every local connection
  // that is open. unsupported (internal) from an agent older than the relay.
  static Result<MessageBridgeClient> Open(const Transport& transport);

  // The next event; nullopt when none came within timeout_ms, or when `wake_fd` (if not -1)
  // became readable first (the caller drains it). unavailable when the agent went away (the
  // sandbox ended, or another server attached).
  Result<std::optional<Event>> Next(int64_t timeout_ms, int wake_fd = -1);
  Status SendLine(uint32_t conn, std::string_view line);
  Status CloseLocal(uint32_t conn);
  int fd() const { return client_.fd(); }

 private:
  explicit MessageBridgeClient(AgentClient client) : client_(std::move(client)) {}
  AgentClient client_;
};

}  // namespace hutch::agent
