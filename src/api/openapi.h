// docs/openapi.yaml, compiled in and served as JSON at GET /v1/openapi.json.
#pragma once

#include <string_view>

#include "api/router.h"
#include "common/json.h"
#include "common/status.h"

namespace hutch::api {

std::string_view OpenApiYaml();
// The document converted to JSON (plain YAML scalars typed as YAML 1.2 core schema types).
Result<json::value> OpenApiJson();
// Adds GET /v1/openapi.json.
void AddOpenApiRoute(Router& router);

}  // namespace hutch::api
