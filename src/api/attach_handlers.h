// /v1/targets and /v1/attach (docs/attach.md): registered targets (admins), attached shells,
// their terminal, live observe and recording.
#pragma once

#include "api/router.h"
#include "controller/attach_service.h"
#include "controller/session_service.h"

namespace hutch::api {

struct AttachDeps {
  controller::AttachService& attach;
  controller::SessionService& service;
};

void AddAttachRoutes(Router& router, AttachDeps deps);

}  // namespace hutch::api
