#include "api/sse_follow.h"

#include <fmt/format.h>

#include "api/metrics_handlers.h"
#include "common/log.h"

namespace hutch::api {

namespace {

using SteadyClock = std::chrono::steady_clock;

class SseFollow final : public BodyStream {
 public:
  SseFollow(SseSource source, int64_t cursor, std::shared_ptr<std::atomic<int>> open,
            std::string_view kind)
      : source_(std::move(source)),
        cursor_(cursor),
        open_(std::move(open)),
        kind_(kind),
        counted_(OpenStreams(kind)) {}
  ~SseFollow() override { open_->fetch_sub(1); }

  std::optional<std::string> Next() override {
    if (!started_) {
      started_ = true;
      next_ping_ = SteadyClock::now() + kMaxStreamSilence;
      // How soon an EventSource reconnects when cut off, and where it resumes: an id without
      // data dispatches nothing but sets the client's Last-Event-ID, so a reconnect before the
      // first item still picks up exactly where this stream began.
      return fmt::format("retry: 2000\nid: {}\n\n", cursor_);
    }
    while (!cancelled_.load()) {
      if (failed_) return std::nullopt;
      Result<std::string> chunk = source_.read(&cursor_);
      if (!chunk.ok()) {
        LOG_WARN("{} stream: {}", kind_, chunk.status().ToString());
        failed_ = true;
        // A comment, which EventSource ignores; the end of the stream makes it reconnect.
        return fmt::format(": error: {}\n\n", chunk.status().message());
      }
      if (!chunk->empty()) return std::move(*chunk);
      if (SteadyClock::now() >= next_ping_) {
        next_ping_ = SteadyClock::now() + kMaxStreamSilence;
        return std::string(": ping\n\n");
      }
      source_.wait(cursor_, next_ping_, cancelled_);
    }
    return std::nullopt;
  }

  void Cancel() override {
    cancelled_ = true;
    source_.wake_all();
  }

 private:
  SseSource source_;
  int64_t cursor_;
  std::shared_ptr<std::atomic<int>> open_;
  std::string kind_;
  metrics::GaugeHold counted_;
  std::atomic<bool> cancelled_{false};
  bool started_ = false;
  bool failed_ = false;
  SteadyClock::time_point next_ping_;
};

}  // namespace

ApiResponse FollowResponse(SseSource source, int64_t cursor,
                           const std::shared_ptr<std::atomic<int>>& open, int max_streams,
                           std::string_view kind) {
  if (open->fetch_add(1) >= max_streams) {
    open->fetch_sub(1);
    return ApiResponse::Error(ResourceExhausted(
        fmt::format("{} {} streams are open, the most this server allows; try again later",
                    max_streams, kind)));
  }
  ApiResponse r;
  r.content_type = "text/event-stream";
  r.headers.emplace_back("X-Accel-Buffering", "no");  // proxies: pass events on at once
  r.stream = std::make_shared<SseFollow>(std::move(source), cursor, open, kind);
  return r;
}

}  // namespace hutch::api
