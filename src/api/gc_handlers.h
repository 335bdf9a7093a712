// POST /v1/admin/gc (docs/api.md, "Garbage collection"): the garbage collector for admins.
#pragma once

#include "api/router.h"
#include "controller/gc.h"

namespace hutch::api {

void AddGcRoutes(Router& router, controller::GarbageCollector& gc);

}  // namespace hutch::api
