// /v1/scenarios, /v1/courses, /v1/me/workshop/{progress,check,next} and
// /v1/workshops/{id}/progress (docs/api.md, "Scenarios, courses and progress").
#pragma once

#include "api/router.h"
#include "controller/scenarios.h"

namespace hutch::api {

void AddScenarioRoutes(Router& router, controller::ScenarioService& scenarios);

}  // namespace hutch::api
