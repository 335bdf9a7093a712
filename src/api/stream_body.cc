#include "api/stream_body.h"

#include <chrono>
#include <utility>

#include <fmt/format.h>

#include "common/log.h"
#include "core/session_json.h"

namespace hutch::api {

namespace {

using controller::OutputStream;
using SteadyClock = std::chrono::steady_clock;

std::string SseEvent(std::string_view event, const json::value& data) {
  return fmt::format("event: {}\ndata: {}\n\n", event, json::serialize(data));
}

json::object ExitJson(const core::ExitInfo& e) {
  json::object o;
  if (e.exited) {
    o["exit_code"] = e.exit_code;
    o["signal"] = e.signal;
  } else {
    o["exit_code"] = nullptr;
    o["signal"] = nullptr;
  }
  o["running"] = !e.exited;
  o["timed_out"] = e.timed_out;
  o["duration_ms"] = e.duration_ms;
  o["dropped_bytes"] = e.dropped_bytes;
  return o;
}

}  // namespace

std::shared_ptr<std::atomic<int>> StreamSlots::Counter() {
  static auto counter = std::make_shared<std::atomic<int>>(0);
  return counter;
}

std::atomic<int>& StreamSlots::Max() {
  static std::atomic<int> max{16};
  return max;
}

Result<std::shared_ptr<void>> StreamSlots::Take() {
  int max = Max().load();
  auto counter = Counter();
  if (counter->fetch_add(1) >= max) {
    counter->fetch_sub(1);
    return ResourceExhausted(fmt::format(
        "{} streams are open on this server, the most it serves at once; use the WebSocket "
        "endpoint (GET …/exec/ws) for many concurrent streams",
        max));
  }
  return std::shared_ptr<void>(nullptr, [counter](void*) { counter->fetch_sub(1); });
}

bool AcceptsEventStream(const ApiRequest& r) {
  return r.Header("accept").find("text/event-stream") != std::string::npos;
}

std::optional<std::string> AgentBodyStream::Next() {
  if (done_) return std::nullopt;
  auto silence_end = SteadyClock::now() + kMaxStreamSilence;
  while (!cancelled_.load()) {
    auto event = stream_.Next(kCancelPollMs);
    if (!event.ok()) return Failed(event.status());
    if (event->has_value()) return Emit(**event);
    if (SteadyClock::now() >= silence_end) return std::string(sse_ ? ": ping\n\n" : "");
  }
  return std::nullopt;
}

std::optional<std::string> AgentBodyStream::Failed(const Status& st) {
  done_ = true;
  LOG_SESSION_WARN(stream_.session().id, "stream: {}", st.ToString());
  if (!sse_) return std::nullopt;
  json::object err;
  err["code"] = std::string(CodeName(st.code()));
  err["message"] = st.message();
  return SseEvent("error", json::object{{"error", std::move(err)}});
}

std::optional<std::string> AgentBodyStream::Emit(OutputStream::Event& e) {
  switch (e.kind) {
    case OutputStream::Event::Kind::kStdout:
    case OutputStream::Event::Kind::kStderr:
      if (!sse_) return std::move(e.data);
      return SseEvent(e.kind == OutputStream::Event::Kind::kStdout ? "stdout" : "stderr",
                      json::object{{"data", std::move(e.data)}});
    case OutputStream::Event::Kind::kExit:
      done_ = true;
      if (on_exit_) on_exit_(e.exit);
      if (!sse_) return std::nullopt;
      return SseEvent("exit", ExitJson(e.exit));
  }
  return std::nullopt;
}

ApiResponse StreamedResponse(std::shared_ptr<BodyStream> body, bool sse) {
  ApiResponse r;
  r.status = 200;
  r.content_type = sse ? "text/event-stream" : "application/octet-stream";
  r.headers.emplace_back("X-Accel-Buffering", "no");
  r.stream = std::move(body);
  return r;
}

}  // namespace hutch::api
