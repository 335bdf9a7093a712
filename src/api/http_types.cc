#include "api/http_types.h"

#include <charconv>

#include <fmt/format.h>

namespace hutch::api {

std::string ApiRequest::Query(std::string_view key) const {
  auto it = query.find(std::string(key));
  if (it == query.end() || it->second.empty()) return {};
  return it->second.front();
}

bool ApiRequest::HasQuery(std::string_view key) const {
  return query.find(std::string(key)) != query.end();
}

std::string ApiRequest::Header(std::string_view lower_name) const {
  auto it = headers.find(std::string(lower_name));
  return it == headers.end() ? std::string() : it->second;
}

ApiResponse ApiResponse::Json(int status, const json::value& v) {
  ApiResponse r;
  r.status = status;
  r.body = json::serialize(v);
  r.body += '\n';
  return r;
}

ApiResponse ApiResponse::Error(const Status& status) {
  json::object err;
  err["code"] = CodeName(status.code());
  err["message"] = status.message();
  json::object o;
  o["error"] = std::move(err);
  return Json(HttpStatus(status.code()), o);
}

Result<bool> QueryBool(const ApiRequest& req, std::string_view key, bool fallback) {
  if (!req.HasQuery(key)) return fallback;
  std::string v = req.Query(key);
  if (v == "true" || v == "1" || v == "yes" || v.empty()) return true;
  if (v == "false" || v == "0" || v == "no") return false;
  return InvalidArgument(fmt::format("query parameter {} must be true or false, got '{}'", key, v));
}

Result<int64_t> QueryInt(const ApiRequest& req, std::string_view key, int64_t fallback, int64_t min,
                         int64_t max) {
  if (!req.HasQuery(key)) return fallback;
  std::string v = req.Query(key);
  int64_t n = 0;
  auto r = std::from_chars(v.data(), v.data() + v.size(), n);
  if (r.ec != std::errc() || r.ptr != v.data() + v.size() || n < min || n > max)
    return InvalidArgument(fmt::format(
        "query parameter {} must be an integer from {} to {}, got '{}'", key, min, max, v));
  return n;
}

}  // namespace hutch::api
