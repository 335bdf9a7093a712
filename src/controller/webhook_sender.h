// The HTTP side of webhooks: one POST to a receiver, with a deadline, to an address the SSRF
// rule allows (webhook_url.h). An interface so the dispatcher can be tested without sockets.
#pragma once

#include <chrono>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "common/status.h"

namespace hutch::controller {

struct WebhookRequest {
  std::string url;
  std::string body;  // sent as application/json
  std::vector<std::pair<std::string, std::string>> headers;
};

class WebhookSender {
 public:
  virtual ~WebhookSender() = default;
  // POSTs `request` and answers the receiver's HTTP status, whatever it is, once the answer's
  // header has arrived (the body is not read). Errors: unavailable (cannot resolve or connect,
  // TLS failed, no answer within `timeout`, cancelled), permission_denied (every address of the
  // host is one webhooks may not go to), invalid_argument (the URL). Thread-safe.
  virtual Result<int> Post(const WebhookRequest& request, std::chrono::milliseconds timeout) = 0;
  // Makes every Post under way, and every later one, fail promptly as cancelled.
  virtual void CancelAll() = 0;
};

// The real one: Beast over TCP, TLS (verifying the certificate against the system's CAs and the
// host name) for https. Host names are resolved with the system resolver, which the deadline
// does not bound; everything after it is. Redirects are not followed.
std::unique_ptr<WebhookSender> NewHttpWebhookSender(bool allow_private);

}  // namespace hutch::controller
