// A query parameter that takes a list: repeated (`type=a&type=b`), comma-separated
// (`type=a,b`) or both, as the filters of /v1/events and /v1/activity read it.
#pragma once

#include <string>
#include <vector>

#include "api/http_types.h"

namespace hutch::api {

// Every non-empty item of `key`'s values, in order.
inline std::vector<std::string> QueryList(const ApiRequest& req, const std::string& key) {
  std::vector<std::string> items;
  auto it = req.query.find(key);
  if (it == req.query.end()) return items;
  for (const std::string& value : it->second) {
    for (size_t start = 0; start <= value.size();) {
      size_t comma = value.find(',', start);
      if (comma == std::string::npos) comma = value.size();
      if (comma > start) items.push_back(value.substr(start, comma - start));
      start = comma + 1;
    }
  }
  return items;
}

}  // namespace hutch::api
