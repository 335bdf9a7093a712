// Readers of the request-body fields that several handler files ask for the same way.
#pragma once

#include <optional>
#include <string>
#include <string_view>

#include <fmt/format.h>

#include "common/json.h"

namespace hutch::api {

// The string `key` of `r`'s object, at most `max_len` bytes: "<key> is required" when it is
// absent or empty.
inline Result<std::string> NonEmptyString(FieldReader& r, std::string_view key, size_t max_len) {
  std::optional<std::string> value;
  RETURN_IF_ERROR(r.String(key, &value, max_len));
  if (!value || value->empty()) return InvalidArgument(fmt::format("{} is required", key));
  return *value;
}

// A JSON body whose only field may be `key`, a string of at most `max_len` bytes: that string,
// or nullopt when the body leaves it out.
inline Result<std::optional<std::string>> SoleString(std::string_view body_text,
                                                     std::string_view key, size_t max_len) {
  ASSIGN_OR_RETURN(json::object body, ParseJsonObject(body_text));
  FieldReader r(body);
  RETURN_IF_ERROR(r.RejectUnknown({key}));
  std::optional<std::string> value;
  RETURN_IF_ERROR(r.String(key, &value, max_len));
  return value;
}

}  // namespace hutch::api
