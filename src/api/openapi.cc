#include "api/openapi.h"

#include <charconv>
#include <string>

#include <yaml-cpp/yaml.h>

namespace hutch::api {

namespace {

json::value ScalarToJson(const YAML::Node& node) {
  const std::string& s = node.Scalar();
  // Quoted scalars carry the non-specific tag "!": always strings.
  if (node.Tag() == "!") return json::value(s);
  if (s == "null" || s == "~" || s.empty()) return nullptr;
  if (s == "true") return true;
  if (s == "false") return false;
  int64_t i;
  auto r = std::from_chars(s.data(), s.data() + s.size(), i);
  if (r.ec == std::errc() && r.ptr == s.data() + s.size()) return i;
  double d;
  auto rd = std::from_chars(s.data(), s.data() + s.size(), d);
  if (rd.ec == std::errc() && rd.ptr == s.data() + s.size()) return d;
  return json::value(s);
}

json::value YamlToJson(const YAML::Node& node) {
  switch (node.Type()) {
    case YAML::NodeType::Map: {
      json::object o;
      for (const auto& kv : node) o[kv.first.as<std::string>()] = YamlToJson(kv.second);
      return o;
    }
    case YAML::NodeType::Sequence: {
      json::array a;
      for (const auto& item : node) a.push_back(YamlToJson(item));
      return a;
    }
    case YAML::NodeType::Scalar:
      return ScalarToJson(node);
    default:
      return nullptr;
  }
}

}  // namespace

Result<json::value> OpenApiJson() {
  try {
    return YamlToJson(YAML::Load(std::string(OpenApiYaml())));
  } catch (const YAML::Exception& e) {
    return Internal(std::string("docs/openapi.yaml does not parse: ") + e.what());
  }
}

void AddOpenApiRoute(Router& router) {
  Result<json::value> doc = OpenApiJson();
  std::string body = doc.ok() ? json::serialize(*doc) : std::string();
  Status st = doc.status();
  router.Add("GET", "/v1/openapi.json", RouteSpec::AnyToken(), [body, st](const RouteContext&) {
    if (!st.ok()) return ApiResponse::Error(st);
    ApiResponse r;
    r.body = body;
    return r;
  });
}

}  // namespace hutch::api
