// The request and response as handlers see them: plain structs, no Beast, so handler files
// compile fast and can be unit-tested without a socket.
#pragma once

#include <map>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "common/json.h"
#include "common/status.h"

namespace hutch::api {

// ApiRequest::path of a request whose target could not be parsed.
inline constexpr std::string_view kInvalidTargetPath = "\x01invalid";

struct ApiRequest {
  std::string method;                                     // "GET", "POST", …
  std::string path;                                       // decoded path without the query
  std::map<std::string, std::vector<std::string>> query;  // decoded, repeated keys kept
  std::map<std::string, std::string> headers;             // lower-case names
  std::string body;
  std::string peer;  // "127.0.0.1:53412"

  // The first value of a query parameter, or "" when absent.
  std::string Query(std::string_view key) const;
  bool HasQuery(std::string_view key) const;
  std::string Header(std::string_view lower_name) const;
};

struct ApiResponse {
  int status = 200;
  std::string content_type = "application/json";
  std::string body;
  std::vector<std::pair<std::string, std::string>> headers;

  static ApiResponse Json(int status, const json::value& v);
  // DESIGN.md §4's error shape: {"error":{"code":"not_found","message":"…"}}.
  static ApiResponse Error(const Status& status);
};

// Parses a query boolean: "true"/"1"/"yes" and "false"/"0"/"no"/"" (absent: `fallback`).
Result<bool> QueryBool(const ApiRequest& req, std::string_view key, bool fallback);
// Parses an integer query parameter within [min, max] (absent: `fallback`).
Result<int64_t> QueryInt(const ApiRequest& req, std::string_view key, int64_t fallback, int64_t min,
                         int64_t max);

}  // namespace hutch::api
