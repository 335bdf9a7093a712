// Following a Server-Sent Events stream for a command (hutch events -f, hutch activity -f):
// reconnects after a cut with Last-Event-ID, stops when stdout closes. Defined in events.cc.
#pragma once

#include <functional>
#include <string>
#include <string_view>

#include "cli/commands.h"
#include "cli/sse.h"

namespace hutch::cli {

// GETs `target` as SSE and hands each event to `on_event` until stdout closes (exit 0), the
// server answers an error (its exit code), or `what`'s stream cannot be reached again after
// ten tries in a row. `parser` keeps the last id across reconnects.
int FollowSse(Command& cmd, client::HttpClient& http, const std::string& target,
              std::string_view what, client::SseParser& parser,
              const std::function<void(const client::SseEvent&)>& on_event);

}  // namespace hutch::cli
