// /v1/webhooks: register, list and remove webhooks, and read their delivery log. Delivering is
// the dispatcher's (controller/webhooks.h).
#pragma once

#include "api/router.h"
#include "store/store.h"

namespace hutch::api {

struct WebhookRouteDeps {
  store::Store& store;
  // Accept receivers on loopback and private addresses (webhooks.allow_private).
  bool allow_private = false;
};

void AddWebhookRoutes(Router& router, WebhookRouteDeps deps);

}  // namespace hutch::api
