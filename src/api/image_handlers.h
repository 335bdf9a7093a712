// /v1/images, /v1/tasks/{id} and POST /v1/sessions/{id}/commit (docs/api.md, "Images").
#pragma once

#include "api/router.h"
#include "controller/images.h"
#include "controller/tasks.h"

namespace hutch::api {

struct ImageRouteDeps {
  controller::ImageService& images;
  controller::TaskRunner& tasks;
};

void AddImageRoutes(Router& router, ImageRouteDeps deps);

}  // namespace hutch::api
