// The files API of sessions (DESIGN.md §4 "Files", docs/api.md "Files"): list, read (with
// Range), stat, write (streamed, atomic), delete, mkdir, move, tar archives both ways, and
// watches. Every path is resolved inside the session's root by src/files.
#pragma once

#include "api/router.h"
#include "controller/session_service.h"

namespace hutch::api {

void AddFileRoutes(Router& router, controller::SessionService& service);

}  // namespace hutch::api
