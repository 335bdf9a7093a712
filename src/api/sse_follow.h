// One Server-Sent Events follow for every log that grows by increasing ids (events, a
// session's messages, activity): reads what is past the client's cursor, and when there is
// nothing, waits until there may be, writing a ping comment at least every kMaxStreamSilence so
// a client that went away is noticed. The log itself is the source's: how a page is read and
// how to wait for more.
#pragma once

#include <atomic>
#include <chrono>
#include <functional>
#include <memory>
#include <string>
#include <string_view>

#include "api/http_types.h"
#include "common/status.h"

namespace hutch::api {

struct SseSource {
  using SteadyClock = std::chrono::steady_clock;
  // The SSE text of the next page past *cursor ("" when there is nothing yet), moving *cursor
  // over what it read. An error ends the stream with it as a comment (EventSource reconnects).
  std::function<Result<std::string>(int64_t* cursor)> read;
  // Blocks until there may be more past `cursor`, `deadline` passed, or `cancelled` is set.
  std::function<void(int64_t cursor, SteadyClock::time_point deadline,
                     const std::atomic<bool>& cancelled)>
      wait;
  // Wakes every waiter so it looks at its `cancelled` flag again.
  std::function<void()> wake_all;
};

// The response that follows `source` from `cursor`: 429 when `open` streams of this kind are
// already `max_streams` (each holds a blocking-pool thread while it waits). `kind` names them in
// the open-streams gauge and in the 429's message.
ApiResponse FollowResponse(SseSource source, int64_t cursor,
                           const std::shared_ptr<std::atomic<int>>& open, int max_streams,
                           std::string_view kind);

}  // namespace hutch::api
