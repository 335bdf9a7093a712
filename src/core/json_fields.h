// Reading and writing the fields of JSON that hutch itself writes (stored rows, the agent's
// answers): a field that is absent or of another type reads as nothing, so a row an older server
// wrote, or a newer agent's answer, still reads. Requests from clients are checked field by field
// elsewhere (session_json.cc's parsers, FieldReader), with errors that name the field.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "common/json.h"
#include "common/time.h"

namespace hutch::core {

// The string at `key`, or "".
std::string GetString(const json::object& o, std::string_view key);
// The number at `key` as an integer (a double is truncated), or nullopt.
std::optional<int64_t> GetInt(const json::object& o, std::string_view key);
// The boolean at `key`, or nullopt.
std::optional<bool> GetBool(const json::object& o, std::string_view key);
// The RFC 3339 time at `key`, or nullopt (also when it does not parse).
std::optional<TimePoint> GetTime(const json::object& o, std::string_view key);
// Sets `key` to the time in RFC 3339, or to null when there is none.
void SetTime(json::object& o, std::string_view key, const std::optional<TimePoint>& t);

}  // namespace hutch::core
