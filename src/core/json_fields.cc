#include "core/json_fields.h"

namespace hutch::core {

std::string GetString(const json::object& o, std::string_view key) {
  auto it = o.find(key);
  if (it == o.end() || !it->value().is_string()) return {};
  return std::string(it->value().get_string());
}

std::optional<int64_t> GetInt(const json::object& o, std::string_view key) {
  auto it = o.find(key);
  if (it == o.end()) return std::nullopt;
  if (it->value().is_int64()) return it->value().get_int64();
  if (it->value().is_uint64()) return static_cast<int64_t>(it->value().get_uint64());
  if (it->value().is_double()) return static_cast<int64_t>(it->value().get_double());
  return std::nullopt;
}

std::optional<bool> GetBool(const json::object& o, std::string_view key) {
  auto it = o.find(key);
  if (it == o.end() || !it->value().is_bool()) return std::nullopt;
  return it->value().get_bool();
}

std::optional<TimePoint> GetTime(const json::object& o, std::string_view key) {
  auto it = o.find(key);
  if (it == o.end() || !it->value().is_string()) return std::nullopt;
  return ParseTime(it->value().get_string());
}

void SetTime(json::object& o, std::string_view key, const std::optional<TimePoint>& t) {
  if (t)
    o[key] = FormatTime(*t);
  else
    o[key] = nullptr;
}

}  // namespace hutch::core
