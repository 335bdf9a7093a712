// YAML (or JSON, read as YAML) documents as JSON values, remembering the line of every field, so
// that the checks of a document (a SessionTemplate, a Scenario, a Course) can name the line an
// error is on. Shared by core/template.cc and core/scenario.cc.
#pragma once

#include <map>
#include <set>
#include <string>
#include <string_view>

#include "common/json.h"
#include "common/status.h"

namespace hutch::core {

class YamlDocument {
 public:
  // Parses `text` (at most `max_bytes`) into a JSON object. `string_maps` are the paths of
  // mappings whose scalar values stay strings (`PORT: 8080` in spec.env means "8080").
  // `what` names the document in errors ("a template").
  static Result<YamlDocument> Parse(std::string_view text, size_t max_bytes, std::string_view what,
                                    std::set<std::string> string_maps = {});

  // Whether the document is a mapping at all (root() is empty when not).
  bool is_map() const { return is_map_; }
  const json::object& root() const { return root_; }
  json::object& root() { return root_; }
  // The line of `path` ("spec.steps[2].check") or of its nearest enclosing field that has one;
  // 1 when none does.
  int LineOf(std::string path) const;
  // invalid_argument "line N: message", N the line of `path`.
  Status Fail(const std::string& path, const std::string& message) const;

 private:
  bool is_map_ = false;
  json::object root_;
  std::map<std::string, int> lines_;
};

}  // namespace hutch::core
