// JSON helpers over Boost.JSON. FieldReader reads a request object field by field and answers
// invalid_argument with the field's full path ("resources.memory_mb must be an integer").
#pragma once

#include <cstdint>
#include <initializer_list>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <boost/json.hpp>

#include "common/status.h"

namespace hutch {

namespace json = boost::json;

// Parses `text` and requires an object at the top; errors name the byte offset.
Result<json::object> ParseJsonObject(std::string_view text);

class FieldReader {
 public:
  // `prefix` is the path of `object` in the request ("" at top level, "resources" below).
  FieldReader(const json::object& object, std::string prefix = "");

  // Each getter leaves *out untouched when the key is absent or null, sets it when the value has
  // the right type and range, and otherwise returns invalid_argument naming the field.
  Status String(std::string_view key, std::optional<std::string>* out, size_t max_len = 4096);
  Status Int(std::string_view key, std::optional<int64_t>* out, int64_t min, int64_t max);
  Status Bool(std::string_view key, std::optional<bool>* out);
  Status StringList(std::string_view key, std::optional<std::vector<std::string>>* out,
                    size_t max_items = 4096);
  Status StringMap(std::string_view key, std::optional<std::map<std::string, std::string>>* out,
                   size_t max_items = 1024);
  // The nested object, or nullptr when absent; invalid_argument when not an object.
  Result<const json::object*> Object(std::string_view key);
  // Any JSON value (for free-form fields such as `metadata`), nullptr when absent.
  const json::value* Raw(std::string_view key) const;

  // invalid_argument naming the first key that is not in `known`.
  Status RejectUnknown(std::initializer_list<std::string_view> known) const;

  // "resources.memory_mb"
  std::string Path(std::string_view key) const;

 private:
  const json::object& object_;
  std::string prefix_;
};

// Converts a JSON value holding a string map (labels, env) into a json::object.
json::object ToJsonObject(const std::map<std::string, std::string>& m);

}  // namespace hutch
