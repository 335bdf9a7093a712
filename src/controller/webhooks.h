// The webhook dispatcher: delivers the event log to the webhooks users registered.
//
// One thread tails the events table from a cursor kept in the store. For each new event it
// queues a pending delivery per matching webhook, in the same transaction that moves the cursor:
// a restart neither loses an event nor queues one twice. The same thread hands due deliveries to
// a small pool of workers, at most one per webhook at a time, so a dead or slow receiver holds at
// most one worker (for at most the timeout per attempt) and never the API or other webhooks.
//
// An attempt POSTs the event as JSON, signed with the webhook's secret (X-Hutch-Signature:
// sha256=<hex HMAC-SHA256(secret, body)>). A 2xx answer is success; anything else (another
// status, no answer within the timeout, a refused connection, an address the SSRF rule refuses)
// is a failed attempt, retried after 1 s, 2 s, 4 s … (capped) until max_attempts. Every attempt is
// a row of the delivery log. Delivery is at least once: an attempt under way when the server
// stops is made again after it starts; receivers deduplicate by X-Hutch-Delivery.
#pragma once

#include <chrono>
#include <condition_variable>
#include <deque>
#include <memory>
#include <mutex>
#include <optional>
#include <set>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include "controller/webhook_sender.h"
#include "core/event.h"
#include "store/store.h"

namespace hutch::controller {

struct WebhookOptions {
  // Admit receivers on loopback and private addresses (see webhook_url.h).
  bool allow_private = false;
  // Deliveries under way at once, across all webhooks (one per webhook).
  int workers = 4;
  // Attempts per event and webhook, the first included.
  int max_attempts = 8;
  // One attempt's deadline: connect, TLS, request and the answer's header.
  std::chrono::milliseconds timeout{5000};
  // The wait before the second attempt; each further one waits twice as long, up to max_retry.
  std::chrono::milliseconds first_retry{1000};
  std::chrono::milliseconds max_retry{std::chrono::hours(1)};
  // How often the dispatcher looks for new events and due retries without being notified.
  std::chrono::milliseconds poll_interval{250};
};

// The body POSTed for `event`: core::EventToJson, serialized.
std::string WebhookBody(const core::Event& event);

// How long to wait after failed attempt number `attempt` (1, 2, …) before the next one.
std::chrono::milliseconds RetryDelay(int attempt, const WebhookOptions& options);

// Whether `webhook` is to receive `event`: it is active, was made before the event, wants its
// type, and the session is its owner's — or any session's, when the webhook is all_sessions and
// its owner is (still) an admin.
bool WebhookWants(const store::Webhook& webhook, const core::Event& event, bool owner_is_admin);

class WebhookDispatcher {
 public:
  WebhookDispatcher(store::Store& store, WebhookOptions options,
                    std::unique_ptr<WebhookSender> sender);
  ~WebhookDispatcher();  // Stop()s
  WebhookDispatcher(const WebhookDispatcher&) = delete;
  WebhookDispatcher& operator=(const WebhookDispatcher&) = delete;

  // Starts the dispatcher thread and the workers.
  void Start();
  // Stops them: attempts under way are cancelled and stay pending, to be made again by the next
  // start. Idempotent.
  void Stop();
  // New events may be in the store: look now rather than at the next poll. Cheap, non-blocking.
  void Notify();

  const WebhookOptions& options() const { return options_; }

 private:
  void Loop();
  void Work();
  // Queues deliveries for every event past the cursor.
  Status FanOut();
  // Hands due deliveries to idle workers.
  Status HandOut();
  // Makes one attempt and records it.
  void Attempt(const store::WebhookDelivery& delivery);

  store::Store& store_;
  const WebhookOptions options_;
  std::unique_ptr<WebhookSender> sender_;

  std::mutex mu_;
  std::condition_variable loop_cv_;           // the dispatcher thread waits here
  std::condition_variable work_cv_;           // the workers wait here
  bool started_ = false;                      // GUARDED_BY(mu_)
  bool stopping_ = false;                     // GUARDED_BY(mu_)
  bool woken_ = false;                        // GUARDED_BY(mu_): Notify() or a worker finished
  std::deque<store::WebhookDelivery> queue_;  // GUARDED_BY(mu_): handed out, not yet taken
  std::set<std::string> busy_;  // GUARDED_BY(mu_): webhooks with a delivery queued or under way
  int idle_workers_ = 0;        // GUARDED_BY(mu_)
  std::thread loop_;
  std::vector<std::thread> workers_;
};

}  // namespace hutch::controller
