// What the blocking streams of stream_handlers.h answer with: an agent's output as an HTTP body
// (SSE events or raw bytes), and the slots that bound how many such streams hold a pool thread.
#pragma once

#include <atomic>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>

#include "api/http_types.h"
#include "controller/sandbox_agent.h"

namespace hutch::api {

// How often a blocked stream looks whether it was cancelled.
inline constexpr int64_t kCancelPollMs = 200;

// Counts the open blocking streams; a slot is released when its stream is destroyed.
class StreamSlots {
 public:
  static std::atomic<int>& Max();
  // resource_exhausted when Max() streams are open.
  static Result<std::shared_ptr<void>> Take();

 private:
  static std::shared_ptr<std::atomic<int>> Counter();
};

// Whether the client asked for Server-Sent Events (Accept: text/event-stream).
bool AcceptsEventStream(const ApiRequest& r);

// An agent stream as an HTTP body: SSE events, or (raw) the output bytes as they are.
class AgentBodyStream final : public BodyStream {
 public:
  AgentBodyStream(controller::OutputStream stream, bool sse, std::shared_ptr<void> slot)
      : stream_(std::move(stream)), sse_(sse), slot_(std::move(slot)) {}

  std::optional<std::string> Next() override;
  void Cancel() override { cancelled_ = true; }
  // Called once with how the command ended, on the thread that reads the body (it may block).
  void OnExit(std::function<void(const core::ExitInfo&)> f) { on_exit_ = std::move(f); }

 private:
  // The event's bytes as this body sends them; sets done_ at the end of the stream.
  std::optional<std::string> Emit(controller::OutputStream::Event& e);
  std::optional<std::string> Failed(const Status& st);

  controller::OutputStream stream_;
  bool sse_;
  std::shared_ptr<void> slot_;
  std::function<void(const core::ExitInfo&)> on_exit_;
  std::atomic<bool> cancelled_{false};
  bool done_ = false;
};

// A 200 whose body is `body`: text/event-stream when `sse`, else octet-stream.
ApiResponse StreamedResponse(std::shared_ptr<BodyStream> body, bool sse);

}  // namespace hutch::api
