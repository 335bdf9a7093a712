// Reading an exec or terminal WebSocket (cli/ws_client.h) in the integration tests.
#pragma once

#include <chrono>
#include <cstdint>
#include <string>
#include <string_view>

#include "cli/ws_client.h"

namespace hutch::testing {

// Reads stdout frames into *out until it holds `needle` (PTY output arrives in pieces); false
// when `timeout_ms` passed or the socket closed first.
inline bool ReadStdoutUntil(client::ExecSocket& s, std::string* out, std::string_view needle,
                            int64_t timeout_ms = 10000) {
  auto until = std::chrono::steady_clock::now() + std::chrono::milliseconds(timeout_ms);
  while (out->find(needle) == std::string::npos) {
    if (std::chrono::steady_clock::now() >= until) return false;
    auto f = s.Read(100);
    if (!f.ok()) continue;
    if (!f->has_value()) return false;
    if ((**f).channel == client::kChannelStdout) *out += (**f).data;
  }
  return true;
}

}  // namespace hutch::testing
