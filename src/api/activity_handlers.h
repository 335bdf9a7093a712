// GET /v1/activity and GET /v1/workshops/{id}/activity (docs/workshops.md, "Activity"): typed
// records of what happened in sessions, as JSON pages, CSV, or a followed SSE stream.
#pragma once

#include "api/router.h"
#include "controller/activity_log.h"
#include "controller/workshops.h"
#include "store/store.h"

namespace hutch::api {

struct ActivityDeps {
  store::Store& store;
  controller::WorkshopService& workshops;
  controller::ActivityLog& log;
  int max_streams = 32;  // followed streams open at once (each holds a pool thread)
};

void AddActivityRoutes(Router& router, ActivityDeps deps);

}  // namespace hutch::api
