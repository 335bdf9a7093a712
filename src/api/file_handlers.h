// The files API of sessions (DESIGN.md §4 "Files", docs/api.md "Files"): list, read (with
// Range), stat, write (streamed, atomic), delete, mkdir, move, tar archives both ways, and
// watches. The work happens behind controller::SandboxFiles: in the session's agent, which
// resolves every path inside the sandbox's root (for a paused session, whose agent is frozen:
// the server, through the driver's root fd, with the same rules).
#pragma once

#include "api/router.h"
#include "controller/session_service.h"

namespace hutch::api {

void AddFileRoutes(Router& router, controller::SessionService& service);

}  // namespace hutch::api
