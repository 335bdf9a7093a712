// A list the API answers whole: {"<key>": [...], "next_page_token": ""} (the lists of users,
// tokens, images, templates, webhooks, services and processes fit on one page).
#pragma once

#include <string_view>
#include <utility>

#include "common/json.h"

namespace hutch::api {

// `items` as `key`'s array, each through `to_json`.
template <class List, class ToJson>
json::value OnePage(std::string_view key, const List& items, ToJson&& to_json) {
  json::array array;
  for (const auto& item : items) array.emplace_back(to_json(item));
  json::object o;
  o[key] = std::move(array);
  o["next_page_token"] = "";
  return json::value(std::move(o));
}

}  // namespace hutch::api
