#include "controller/webhooks.h"

#include <algorithm>
#include <map>

#include <fmt/format.h>

#include "common/hmac.h"
#include "common/ids.h"
#include "common/log.h"
#include "controller/metrics.h"

namespace hutch::controller {

namespace {

// Events read per fan-out step: one transaction queues their deliveries.
constexpr int kFanOutBatch = 500;

// What the dispatcher needs to know of a webhook's owner at fan-out time.
struct OwnerInfo {
  bool active = false;  // exists and is not disabled
  bool admin = false;
};

}  // namespace

std::string WebhookBody(const core::Event& event) {
  return json::serialize(core::EventToJson(event));
}

std::chrono::milliseconds RetryDelay(int attempt, const WebhookOptions& options) {
  std::chrono::milliseconds delay = options.first_retry;
  for (int i = 1; i < attempt && delay < options.max_retry; ++i) delay *= 2;
  return std::min(delay, options.max_retry);
}

bool WebhookWants(const store::Webhook& webhook, const core::Event& event, bool owner_is_admin) {
  if (!webhook.active || event.id <= webhook.start_event_id) return false;
  if (event.owner != webhook.owner && !(webhook.all_sessions && owner_is_admin)) return false;
  return std::any_of(webhook.events.begin(), webhook.events.end(),
                     [&](const std::string& t) { return t == "*" || t == event.type; });
}

WebhookDispatcher::WebhookDispatcher(store::Store& store, WebhookOptions options,
                                     std::unique_ptr<WebhookSender> sender)
    : store_(store), options_(options), sender_(std::move(sender)) {}

WebhookDispatcher::~WebhookDispatcher() { Stop(); }

void WebhookDispatcher::Start() {
  std::lock_guard lock(mu_);
  if (started_) return;
  started_ = true;
  for (int i = 0; i < std::max(1, options_.workers); ++i) workers_.emplace_back([this] { Work(); });
  loop_ = std::thread([this] { Loop(); });
}

void WebhookDispatcher::Stop() {
  {
    std::lock_guard lock(mu_);
    if (stopping_) return;
    stopping_ = true;
  }
  sender_->CancelAll();
  loop_cv_.notify_all();
  work_cv_.notify_all();
  if (loop_.joinable()) loop_.join();
  for (auto& t : workers_)
    if (t.joinable()) t.join();
}

void WebhookDispatcher::Notify() {
  {
    std::lock_guard lock(mu_);
    woken_ = true;
  }
  loop_cv_.notify_one();
}

void WebhookDispatcher::Loop() {
  // A failing store is logged once per kind of failure, not at every poll.
  std::string last_error;
  while (true) {
    {
      std::lock_guard lock(mu_);
      if (stopping_) return;
    }
    Status st = FanOut();
    if (st.ok()) st = HandOut();
    if (!st.ok() && st.message() != last_error) LOG_WARN("webhooks: {}", st.ToString());
    last_error = st.ok() ? "" : st.message();
    std::unique_lock lock(mu_);
    loop_cv_.wait_for(lock, options_.poll_interval, [&] { return stopping_ || woken_; });
    woken_ = false;
  }
}

Status WebhookDispatcher::FanOut() {
  ASSIGN_OR_RETURN(int64_t cursor, store_.GetWebhookCursor());
  while (true) {
    store::EventFilter filter;
    filter.after_id = cursor;
    filter.limit = kFanOutBatch;
    ASSIGN_OR_RETURN(std::vector<core::Event> events, store_.ListEvents(filter));
    if (events.empty()) return Status::Ok();
    ASSIGN_OR_RETURN(std::vector<store::Webhook> webhooks, store_.ListWebhooks(""));
    // The owners' roles are read once per batch: a demoted admin's all_sessions webhook narrows
    // to their own sessions, a disabled or deleted user's webhooks go quiet.
    std::map<std::string, OwnerInfo> owners;
    for (const auto& w : webhooks) {
      if (owners.count(w.owner)) continue;
      Result<store::User> u = store_.GetUser(w.owner);
      if (!u.ok() && u.status().code() != Code::kNotFound) return u.status();
      owners[w.owner] = u.ok() ? OwnerInfo{!u->disabled, u->role == "admin"} : OwnerInfo{};
    }
    const TimePoint now = Now();
    std::vector<store::WebhookDelivery> deliveries;
    for (const auto& e : events) {
      for (const auto& w : webhooks) {
        const OwnerInfo& owner = owners[w.owner];
        if (!owner.active || !WebhookWants(w, e, owner.admin)) continue;
        store::WebhookDelivery d;
        d.webhook_id = w.id;
        d.event_id = e.id;
        d.attempt = 1;
        d.at = now;
        d.next_attempt_at = now;
        deliveries.push_back(std::move(d));
      }
    }
    Status st = store_.EnqueueDeliveries(cursor, events.back().id, deliveries);
    if (st.code() == Code::kConflict) {
      // Another dispatcher on the same store queued these; carry on from where it got to.
      ASSIGN_OR_RETURN(cursor, store_.GetWebhookCursor());
      continue;
    }
    RETURN_IF_ERROR(st);
    cursor = events.back().id;
    if (static_cast<int>(events.size()) < kFanOutBatch) return Status::Ok();
  }
}

Status WebhookDispatcher::HandOut() {
  size_t busy = 0;
  {
    std::lock_guard lock(mu_);
    if (idle_workers_ <= static_cast<int>(queue_.size())) return Status::Ok();
    busy = busy_.size();
  }
  // Each busy webhook's first due delivery is among these, and is skipped: ask for enough more.
  ASSIGN_OR_RETURN(std::vector<store::WebhookDelivery> due,
                   store_.DueDeliveries(Now(), options_.workers + static_cast<int>(busy)));
  {
    std::lock_guard lock(mu_);
    for (auto& d : due) {
      if (idle_workers_ <= static_cast<int>(queue_.size())) break;
      if (!busy_.insert(d.webhook_id).second) continue;
      queue_.push_back(std::move(d));
    }
  }
  work_cv_.notify_all();
  return Status::Ok();
}

void WebhookDispatcher::Work() {
  std::unique_lock lock(mu_);
  while (true) {
    ++idle_workers_;
    work_cv_.wait(lock, [&] { return stopping_ || !queue_.empty(); });
    --idle_workers_;
    if (stopping_) return;
    store::WebhookDelivery d = std::move(queue_.front());
    queue_.pop_front();
    lock.unlock();
    Attempt(d);
    lock.lock();
    busy_.erase(d.webhook_id);
    // The webhook may have more waiting: let the dispatcher hand out the next one now.
    woken_ = true;
    loop_cv_.notify_one();
  }
}

void WebhookDispatcher::Attempt(const store::WebhookDelivery& d) {
  Result<store::Webhook> webhook = store_.GetWebhook("", d.webhook_id);
  if (!webhook.ok()) {
    // Deleted meanwhile: its log went with it.
    if (webhook.status().code() != Code::kNotFound)
      LOG_WARN("webhook {}: {}", d.webhook_id, webhook.status().ToString());
    return;
  }
  store::WebhookDelivery done = d;
  done.at = Now();
  std::optional<store::WebhookDelivery> retry;
  Result<core::Event> event = store_.GetEvent(d.event_id);
  std::string session_id;
  if (!event.ok()) {
    if (event.status().code() != Code::kNotFound) {
      LOG_WARN("webhook {}: {}", d.webhook_id, event.status().ToString());
      return;  // still pending: tried again at the next hand-out
    }
    done.status = std::string(store::kDeliveryFailed);
    done.error = fmt::format("event {} no longer exists", d.event_id);
    done.next_attempt_at.reset();
  } else {
    session_id = event->session_id;
    WebhookRequest req;
    req.url = webhook->url;
    req.body = WebhookBody(*event);
    req.headers = {
        {"User-Agent", "hutch-webhooks"},
        {"X-Hutch-Event", event->type},
        // The same for every attempt of this event to this webhook: receivers deduplicate by it.
        {"X-Hutch-Delivery", fmt::format("{}-{}", d.webhook_id, d.event_id)},
        {"X-Hutch-Attempt", std::to_string(d.attempt)},
        {"X-Hutch-Signature", "sha256=" + HmacSha256Hex(webhook->secret, req.body)},
    };
    const int64_t start = MonotonicMillis();
    Result<int> status = sender_->Post(req, options_.timeout);
    done.duration_ms = MonotonicMillis() - start;
    {
      std::lock_guard lock(mu_);
      // Cancelled by Stop(): not the receiver's fault; left pending for the next start.
      if (stopping_ && !status.ok()) return;
    }
    if (status.ok()) done.http_status = *status;
    if (status.ok() && *status >= 200 && *status < 300) {
      done.status = std::string(store::kDeliveryOk);
      done.next_attempt_at.reset();
    } else {
      done.status = std::string(store::kDeliveryFailed);
      if (!status.ok()) {
        done.error = status.status().message();
      } else if (*status >= 300 && *status < 400) {
        done.error = fmt::format("HTTP {} (redirects are not followed)", *status);
      } else {
        done.error = fmt::format("HTTP {}", *status);
      }
      done.next_attempt_at.reset();
      if (d.attempt < options_.max_attempts) {
        retry = d;
        retry->id = 0;
        retry->attempt = d.attempt + 1;
        retry->at = Now();
        retry->next_attempt_at = retry->at + RetryDelay(d.attempt, options_);
        done.next_attempt_at = retry->next_attempt_at;
      }
      LOG_SESSION_WARN(session_id, "webhook {}: event {} attempt {} of {} failed: {}{}",
                       d.webhook_id, d.event_id, d.attempt, options_.max_attempts, done.error,
                       retry ? "" : "; giving up");
    }
  }
  metric::WebhookDeliveries().With({done.status}).Inc();
  Status st = store_.FinishDelivery(done, retry);
  if (!st.ok() && st.code() != Code::kNotFound)
    LOG_SESSION_WARN(session_id, "webhook {}: {}", d.webhook_id, st.ToString());
}

}  // namespace hutch::controller
