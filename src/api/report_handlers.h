// GET /v1/reports/abuse (docs/api.md, "Abuse report"): admins only.
#pragma once

#include <cstdint>

#include "api/router.h"
#include "store/store.h"

namespace hutch::api {

struct ReportDeps {
  store::Store& store;
  int64_t cpu_full_seconds = 600;  // config abuse.cpu_full_seconds
};

void AddReportRoutes(Router& router, const ReportDeps& deps);

}  // namespace hutch::api
