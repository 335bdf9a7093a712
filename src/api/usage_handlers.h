// GET /v1/usage and GET /v1/workshops/{id}/costs (docs/usage.md, docs/workshops.md "Costs").
#pragma once

#include <cstdint>

#include "api/router.h"
#include "controller/workshops.h"
#include "core/usage.h"
#include "store/store.h"

namespace hutch::api {

struct UsageDeps {
  store::Store& store;
  controller::WorkshopService& workshops;
  core::RateCard rates;           // the server's rate card (config `rates:`)
  int64_t bucket_seconds = 3600;  // the meter's: since/until are rounded to it
};

void AddUsageRoutes(Router& router, const UsageDeps& deps);

}  // namespace hutch::api
