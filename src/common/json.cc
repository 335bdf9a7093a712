#include "common/json.h"

#include <fmt/format.h>

namespace hutch {

Result<json::object> ParseJsonObject(std::string_view text) {
  boost::system::error_code ec;
  json::parse_options opts;
  opts.max_depth = 64;
  json::value v = json::parse(text, ec, {}, opts);
  if (ec) return InvalidArgument(fmt::format("request body is not valid JSON: {}", ec.message()));
  if (!v.is_object()) return InvalidArgument("request body must be a JSON object");
  return std::move(v.as_object());
}

FieldReader::FieldReader(const json::object& object, std::string prefix)
    : object_(object), prefix_(std::move(prefix)) {}

std::string FieldReader::Path(std::string_view key) const {
  if (prefix_.empty()) return std::string(key);
  return fmt::format("{}.{}", prefix_, key);
}

const json::value* FieldReader::Raw(std::string_view key) const {
  auto it = object_.find(key);
  if (it == object_.end() || it->value().is_null()) return nullptr;
  return &it->value();
}

Status FieldReader::String(std::string_view key, std::optional<std::string>* out, size_t max_len) {
  const json::value* v = Raw(key);
  if (!v) return Status::Ok();
  if (!v->is_string()) return InvalidArgument(fmt::format("{} must be a string", Path(key)));
  const auto& s = v->get_string();
  if (s.size() > max_len)
    return InvalidArgument(fmt::format("{} is longer than {} bytes", Path(key), max_len));
  *out = std::string(s);
  return Status::Ok();
}

Status FieldReader::Int(std::string_view key, std::optional<int64_t>* out, int64_t min,
                        int64_t max) {
  const json::value* v = Raw(key);
  if (!v) return Status::Ok();
  int64_t n;
  if (v->is_int64()) {
    n = v->get_int64();
  } else if (v->is_uint64()) {
    if (v->get_uint64() > static_cast<uint64_t>(INT64_MAX))
      return InvalidArgument(fmt::format("{} must be at most {}", Path(key), max));
    n = static_cast<int64_t>(v->get_uint64());
  } else if (v->is_double() &&
             v->get_double() == static_cast<double>(static_cast<int64_t>(v->get_double()))) {
    n = static_cast<int64_t>(v->get_double());
  } else {
    return InvalidArgument(fmt::format("{} must be an integer", Path(key)));
  }
  if (n < min || n > max)
    return InvalidArgument(
        fmt::format("{} must be between {} and {}, got {}", Path(key), min, max, n));
  *out = n;
  return Status::Ok();
}

Status FieldReader::Bool(std::string_view key, std::optional<bool>* out) {
  const json::value* v = Raw(key);
  if (!v) return Status::Ok();
  if (!v->is_bool()) return InvalidArgument(fmt::format("{} must be true or false", Path(key)));
  *out = v->get_bool();
  return Status::Ok();
}

Status FieldReader::StringList(std::string_view key, std::optional<std::vector<std::string>>* out,
                               size_t max_items) {
  const json::value* v = Raw(key);
  if (!v) return Status::Ok();
  if (!v->is_array())
    return InvalidArgument(fmt::format("{} must be an array of strings", Path(key)));
  const auto& arr = v->get_array();
  if (arr.size() > max_items)
    return InvalidArgument(fmt::format("{} has more than {} items", Path(key), max_items));
  std::vector<std::string> items;
  items.reserve(arr.size());
  for (size_t i = 0; i < arr.size(); ++i) {
    if (!arr[i].is_string())
      return InvalidArgument(fmt::format("{}[{}] must be a string", Path(key), i));
    items.emplace_back(arr[i].get_string());
  }
  *out = std::move(items);
  return Status::Ok();
}

Status FieldReader::StringMap(std::string_view key,
                              std::optional<std::map<std::string, std::string>>* out,
                              size_t max_items) {
  const json::value* v = Raw(key);
  if (!v) return Status::Ok();
  if (!v->is_object())
    return InvalidArgument(fmt::format("{} must be an object of strings", Path(key)));
  const auto& obj = v->get_object();
  if (obj.size() > max_items)
    return InvalidArgument(fmt::format("{} has more than {} entries", Path(key), max_items));
  std::map<std::string, std::string> m;
  for (const auto& kv : obj) {
    if (!kv.value().is_string())
      return InvalidArgument(
          fmt::format("{}.{} must be a string", Path(key), std::string_view(kv.key())));
    m.emplace(std::string(kv.key()), std::string(kv.value().get_string()));
  }
  *out = std::move(m);
  return Status::Ok();
}

Result<const json::object*> FieldReader::Object(std::string_view key) {
  const json::value* v = Raw(key);
  if (!v) return static_cast<const json::object*>(nullptr);
  if (!v->is_object()) return InvalidArgument(fmt::format("{} must be an object", Path(key)));
  return &v->get_object();
}

Status FieldReader::RejectUnknown(std::initializer_list<std::string_view> known) const {
  for (const auto& kv : object_) {
    bool found = false;
    for (auto k : known)
      if (k == kv.key()) found = true;
    if (!found)
      return InvalidArgument(fmt::format("unknown field {}", Path(std::string_view(kv.key()))));
  }
  return Status::Ok();
}

json::object ToJsonObject(const std::map<std::string, std::string>& m) {
  json::object o;
  for (const auto& [k, v] : m) o[k] = v;
  return o;
}

}  // namespace hutch
