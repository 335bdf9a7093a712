// GET …/logs: the session's log, whole or followed while the session lives.
#include <chrono>
#include <memory>
#include <optional>
#include <thread>
#include <utility>

#include "api/stream_body.h"
#include "api/stream_routes.h"
#include "core/scopes.h"

namespace hutch::api {

namespace {

using controller::SessionService;
using SteadyClock = std::chrono::steady_clock;

// The session's log, with follow: polls for growth (through the agent while the session runs,
// SessionService::ReadLog); ends when the session is no longer live.
class LogBodyStream final : public BodyStream {
 public:
  LogBodyStream(SessionService& service, core::Principal who, std::string session_id,
                core::LogChunk first, bool follow, std::shared_ptr<void> slot)
      : service_(service),
        who_(std::move(who)),
        session_id_(std::move(session_id)),
        pending_(std::move(first.data)),
        follow_(follow),
        slot_(std::move(slot)) {}

  std::optional<std::string> Next() override {
    if (!pending_.empty()) {
      offset_ += pending_.size();
      return std::exchange(pending_, std::string());
    }
    auto silence_end = SteadyClock::now() + kMaxStreamSilence;
    auto next_check = SteadyClock::now();
    while (!cancelled_.load()) {
      auto chunk = service_.ReadLog(who_, session_id_, offset_, kChunkBytes);
      if (!chunk.ok()) return std::nullopt;  // purged, or the sandbox's files were removed
      if (!chunk->data.empty()) {
        offset_ += chunk->data.size();
        return std::move(chunk->data);
      }
      if (!follow_) return std::nullopt;
      if (SteadyClock::now() >= next_check) {
        if (!SessionLive()) return std::nullopt;
        next_check = SteadyClock::now() + std::chrono::seconds(1);
      }
      if (SteadyClock::now() >= silence_end) return std::string();
      std::this_thread::sleep_for(std::chrono::milliseconds(kCancelPollMs));
    }
    return std::nullopt;
  }
  void Cancel() override { cancelled_ = true; }

  static constexpr uint32_t kChunkBytes = 64 * 1024;

 private:
  // A stopped or terminated session's agent writes no more: the follow ends with it.
  bool SessionLive() {
    auto s = service_.Get(who_, session_id_);
    return s.ok() &&
           (s->state == core::SessionState::kRunning || s->state == core::SessionState::kPaused ||
            s->state == core::SessionState::kProvisioning);
  }

  SessionService& service_;
  core::Principal who_;
  std::string session_id_;
  std::string pending_;
  bool follow_;
  std::shared_ptr<void> slot_;
  uint64_t offset_ = 0;
  std::atomic<bool> cancelled_{false};
};

// GET …/logs?follow=.
ApiResponse Logs(SessionService& service, const RouteContext& c) {
  auto follow = QueryBool(c.request, "follow", false);
  if (!follow.ok()) return ApiResponse::Error(follow.status());
  core::Session touched;
  auto first = service.ReadLog(c.principal, c.Param("id"), 0, LogBodyStream::kChunkBytes, &touched);
  Touched(c, touched);
  if (!first.ok()) return ApiResponse::Error(first.status());
  auto slot = StreamSlots::Take();
  if (!slot.ok()) return ApiResponse::Error(slot.status());
  auto body = std::make_shared<LogBodyStream>(service, c.principal, touched.id, std::move(*first),
                                              *follow, std::move(*slot));
  ApiResponse r = StreamedResponse(std::move(body), false);
  r.content_type = "text/plain; charset=utf-8";
  return r;
}

}  // namespace

void AddLogRoutes(Router& router, const StreamDeps& deps) {
  router.Add("GET", "/v1/sessions/{id}/logs",
             SessionSpec(core::kScopeSessionsRead, "sessions.logs"), OnService(deps.service, Logs));
}

}  // namespace hutch::api
