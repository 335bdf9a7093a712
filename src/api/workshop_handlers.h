// /v1/workshops and /v1/me/workshop (docs/api.md, "Workshops").
#pragma once

#include <string>

#include "api/rate_limit.h"
#include "api/router.h"
#include "controller/scenarios.h"
#include "controller/workshops.h"
#include "store/store.h"

namespace hutch::api {

struct WorkshopDeps {
  controller::WorkshopService& workshops;
  store::Store& store;  // for the tokens a join or an access link mints
  // Config::public_url: access links are <public_url>/access/<secret>.
  std::string public_url;
  // Joins and opened access links need no token: they are limited per client address.
  double join_rate_per_second = 1;
  double join_burst = 20;
  // Where `scenario` and `course` of POST /v1/workshops are resolved; none: not accepted.
  controller::ScenarioService* scenarios = nullptr;
};

// Every workshop route, those of workshop_watch_handlers.cc (messages, health) included.
void AddWorkshopRoutes(Router& router, const WorkshopDeps& deps);
void AddWorkshopWatchRoutes(Router& router, controller::WorkshopService& workshops);

}  // namespace hutch::api
