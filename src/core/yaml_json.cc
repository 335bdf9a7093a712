#include "core/yaml_json.h"

#include <yaml-cpp/yaml.h>

#include <cctype>
#include <cerrno>
#include <cstdlib>

#include <fmt/format.h>

namespace hutch::core {

namespace {

// YAML → JSON, recording the line (1-based) of every field by its path ("resources.cpus",
// "setup[2]").
class Converter {
 public:
  Converter(std::map<std::string, int>& lines, const std::set<std::string>& string_maps)
      : lines_(lines), string_maps_(string_maps) {}

  Result<json::value> Convert(const YAML::Node& node, const std::string& path) {
    if (!path.empty()) lines_.emplace(path, node.Mark().line + 1);
    switch (node.Type()) {
      case YAML::NodeType::Null:
      case YAML::NodeType::Undefined:
        return json::value(nullptr);
      case YAML::NodeType::Scalar:
        return Scalar(node);
      case YAML::NodeType::Sequence: {
        json::array a;
        for (size_t i = 0; i < node.size(); ++i) {
          ASSIGN_OR_RETURN(json::value v, Convert(node[i], fmt::format("{}[{}]", path, i)));
          a.push_back(std::move(v));
        }
        return json::value(std::move(a));
      }
      case YAML::NodeType::Map:
        return Map(node, path);
    }
    return json::value(nullptr);
  }

 private:
  static int Line(const YAML::Node& n) { return n.Mark().line + 1; }

  Result<json::value> Map(const YAML::Node& node, const std::string& path) {
    json::object o;
    const bool strings = string_maps_.contains(path);
    for (auto it = node.begin(); it != node.end(); ++it) {
      if (!it->first.IsScalar())
        return InvalidArgument(fmt::format("line {}: {} has a key that is not a string",
                                           Line(it->first), path.empty() ? "the document" : path));
      std::string key = it->first.Scalar();
      std::string child = path.empty() ? key : path + "." + key;
      if (o.contains(key))
        return InvalidArgument(fmt::format("line {}: {} is given twice", Line(it->first), child));
      // A key's line is where the key is; a value on the next lines would be misleading.
      lines_.emplace(child, it->first.Mark().line + 1);
      if (strings && it->second.IsScalar()) {
        lines_.emplace(child, it->second.Mark().line + 1);
        o[key] = it->second.Scalar();
        continue;
      }
      ASSIGN_OR_RETURN(json::value v, Convert(it->second, child));
      o[key] = std::move(v);
    }
    return json::value(std::move(o));
  }

  // Quoted scalars are strings; plain ones follow YAML 1.2's core schema (which JSON's
  // literals are part of).
  static json::value Scalar(const YAML::Node& node) {
    const std::string& s = node.Scalar();
    if (node.Tag() == "!") return json::value(s);
    if (s == "null" || s == "Null" || s == "NULL" || s == "~" || s.empty())
      return json::value(nullptr);
    if (s == "true" || s == "True" || s == "TRUE") return json::value(true);
    if (s == "false" || s == "False" || s == "FALSE") return json::value(false);
    if (!s.empty() && (isdigit(static_cast<unsigned char>(s[0])) || s[0] == '-' || s[0] == '+')) {
      errno = 0;
      char* end = nullptr;
      long long i = std::strtoll(s.c_str(), &end, 10);
      if (errno == 0 && end && *end == '\0') return json::value(static_cast<int64_t>(i));
      errno = 0;
      double d = std::strtod(s.c_str(), &end);
      if (errno == 0 && end && *end == '\0') return json::value(d);
    }
    return json::value(s);
  }

  std::map<std::string, int>& lines_;
  const std::set<std::string>& string_maps_;
};

}  // namespace

Result<YamlDocument> YamlDocument::Parse(std::string_view text, size_t max_bytes,
                                         std::string_view what, std::set<std::string> string_maps) {
  if (text.size() > max_bytes)
    return InvalidArgument(fmt::format("{} is larger than {} KiB", what, max_bytes / 1024));
  YAML::Node doc;
  try {
    doc = YAML::Load(std::string(text));
  } catch (const YAML::Exception& e) {
    return InvalidArgument(
        fmt::format("line {}: not valid YAML or JSON: {}", e.mark.line + 1, e.msg));
  }
  YamlDocument out;
  if (!doc.IsMap()) return out;  // root() stays empty: the caller says what it should hold
  out.is_map_ = true;
  Converter conv(out.lines_, string_maps);
  ASSIGN_OR_RETURN(json::value v, conv.Convert(doc, ""));
  out.root_ = std::move(v.as_object());
  return out;
}

int YamlDocument::LineOf(std::string path) const {
  while (!path.empty()) {
    if (auto it = lines_.find(path); it != lines_.end()) return it->second;
    size_t cut = path.find_last_of(".[");
    if (cut == std::string::npos) break;
    path.resize(cut);
  }
  return 1;
}

Status YamlDocument::Fail(const std::string& path, const std::string& message) const {
  return InvalidArgument(fmt::format("line {}: {}", LineOf(path), message));
}

}  // namespace hutch::core
