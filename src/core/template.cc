#include "core/template.h"

#include <algorithm>
#include <cerrno>
#include <cstdlib>
#include <map>

#include <fmt/format.h>

#include "core/yaml_json.h"

#include "core/guardrails.h"

namespace hutch::core {

namespace {

constexpr size_t kMaxGrants = 100;

bool IsIdOf(std::string_view id, std::string_view prefix) {
  if (!id.starts_with(prefix) || id.size() == prefix.size() || id.size() > 64) return false;
  return std::all_of(id.begin() + prefix.size(), id.end(), [](char c) {
    return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_' || c == '-';
  });
}

bool IsValidGrant(std::string_view g) {
  if (g.starts_with("role:")) {
    std::string_view r = g.substr(5);
    return r == "admin" || r == "user" || r == "instructor" || r == "participant";
  }
  if (g.starts_with("workshop:")) return IsIdOf(g.substr(9), "wsh_");
  return IsIdOf(g, "usr_");
}

constexpr size_t kMaxDocumentBytes = 256 * 1024;

// The field an error message of session_json.cc is about: its first word, or the one after
// "unknown field".
std::string FieldOfMessage(const std::string& message) {
  std::string_view m = message;
  constexpr std::string_view kUnknown = "unknown field ";
  if (m.starts_with(kUnknown)) m.remove_prefix(kUnknown.size());
  size_t end = m.find_first_of(" :,'");
  return std::string(m.substr(0, end));
}

// metadata: name, description, and who else may start from the template. Returns the field and
// the message of the first error ({"", ""} when there is none).
std::pair<std::string, std::string> ParseMetadata(const json::object& meta, SessionTemplate& t) {
  for (const auto& kv : meta) {
    std::string_view k = kv.key();
    if (k != "name" && k != "description" && k != "visibility" && k != "shared_with")
      return {fmt::format("metadata.{}", k),
              fmt::format("unknown field metadata.{} (metadata has name, description, visibility "
                          "and shared_with)",
                          k)};
  }
  const json::value* name = meta.if_contains("name");
  if (!name || !name->is_string()) return {"metadata", "metadata.name is required"};
  t.name = std::string(name->get_string());
  if (!IsValidName(t.name))
    return {"metadata.name",
            fmt::format("metadata.name '{}' must be a DNS label: 1 to 63 lowercase letters, "
                        "digits or '-', starting and ending with a letter or digit",
                        t.name)};
  if (const json::value* d = meta.if_contains("description")) {
    if (!d->is_string() || d->get_string().size() > 1024)
      return {"metadata.description",
              "metadata.description must be a string of at most 1024 characters"};
    t.description = std::string(d->get_string());
  }
  if (const json::value* v = meta.if_contains("visibility")) {
    if (!v->is_string() || (v->get_string() != "private" && v->get_string() != "public"))
      return {"metadata.visibility", "metadata.visibility must be private or public"};
    t.visibility = std::string(v->get_string());
  }
  if (const json::value* g = meta.if_contains("shared_with")) {
    if (!g->is_array() || g->get_array().size() > kMaxGrants)
      return {"metadata.shared_with",
              fmt::format("metadata.shared_with must be a list of at most {} grants", kMaxGrants)};
    for (const json::value& one : g->get_array()) {
      std::string grant = one.is_string() ? std::string(one.get_string()) : std::string();
      if (!IsValidGrant(grant))
        return {"metadata.shared_with",
                fmt::format("metadata.shared_with: '{}' is not a grant: give a user id "
                            "(usr_…), role:ROLE (admin, user, instructor, participant) or "
                            "workshop:WORKSHOP-ID (its participants)",
                            one.is_string() ? grant : json::serialize(one))};
      if (std::find(t.shared_with.begin(), t.shared_with.end(), grant) == t.shared_with.end())
        t.shared_with.push_back(std::move(grant));
    }
  }
  return {"", ""};
}
// spec.agents: [{name, config?}], the agents of the session's owner by name (or id), each with
// a config that is merged over the agent's own. "" when acceptable, else why not.
std::string CheckTemplateAgents(const json::value& v) {
  if (!v.is_array() || v.as_array().empty() || v.as_array().size() > 16)
    return "spec.agents must be a list of 1 to 16 agents ({name, config})";
  const json::array& list = v.as_array();
  for (size_t i = 0; i < list.size(); ++i) {
    if (!list[i].is_object()) return fmt::format("spec.agents[{}] must be a mapping", i);
    for (const auto& kv : list[i].as_object())
      if (kv.key() != "name" && kv.key() != "config")
        return fmt::format("spec.agents[{}]: unknown field {} (an agent has name and config)", i,
                           std::string_view(kv.key()));
    const json::value* name = list[i].as_object().if_contains("name");
    if (!name || !name->is_string() || name->as_string().empty())
      return fmt::format("spec.agents[{}].name must name an agent of yours", i);
    const json::value* config = list[i].as_object().if_contains("config");
    if (config && !config->is_object())
      return fmt::format("spec.agents[{}].config must be a mapping", i);
  }
  return "";
}

}  // namespace

Result<SessionTemplate> ParseTemplateDocument(std::string_view text, const Resources& defaults,
                                              const ResourceCeiling& ceiling) {
  ASSIGN_OR_RETURN(YamlDocument doc, YamlDocument::Parse(text, kMaxDocumentBytes, "the template",
                                                         {"spec.env", "spec.labels"}));
  if (!doc.is_map())
    return InvalidArgument(
        "line 1: a template is a document with kind: SessionTemplate, metadata and spec");
  const json::object& root = doc.root();
  auto fail = [&](const std::string& path, const std::string& message) {
    return doc.Fail(path, message);
  };
  for (const auto& kv : root) {
    std::string_view k = kv.key();
    if (k != "kind" && k != "apiVersion" && k != "metadata" && k != "spec")
      return fail(std::string(k),
                  fmt::format("unknown field {} (a template has kind, apiVersion, metadata and "
                              "spec)",
                              k));
  }
  const json::value* kind = root.if_contains("kind");
  if (!kind || !kind->is_string() || kind->get_string() != "SessionTemplate")
    return fail("kind", "kind must be SessionTemplate");
  // v1 is Raworc's spelling of the same document (docs/agents.md, "Templates").
  if (const json::value* api = root.if_contains("apiVersion");
      api && (!api->is_string() || (api->get_string() != "hutch/v1" && api->get_string() != "v1")))
    return fail("apiVersion", "apiVersion must be hutch/v1 or v1 (or left out)");

  SessionTemplate t;
  const json::value* meta = root.if_contains("metadata");
  if (!meta || !meta->is_object()) return fail("metadata", "metadata with a name is required");
  if (auto [path, message] = ParseMetadata(meta->get_object(), t); !message.empty())
    return fail(path, message);

  json::object spec;
  if (const json::value* s = root.if_contains("spec"); s && !s->is_null()) {
    if (!s->is_object()) return fail("spec", "spec must be a mapping of session fields");
    spec = s->get_object();
  }
  // Raworc's spec.agents and spec.guardrails are the agents' fields of a create request, not
  // the session's: checked here, applied by the API with the session's agents.
  if (const json::value* agents = spec.if_contains("agents")) {
    std::string message = CheckTemplateAgents(*agents);
    if (!message.empty()) return fail("spec.agents", message);
  }
  if (const json::value* g = spec.if_contains("guardrails")) {
    auto parsed = ParseGuardrails(*g, "spec.guardrails");
    if (!parsed.ok()) return fail("spec.guardrails", parsed.status().message());
  }
  for (const auto& kv : spec) {
    std::string_view k = kv.key();
    std::string path = fmt::format("spec.{}", k);
    if (k == "agents" || k == "guardrails") continue;
    if (std::find(std::begin(kTemplateSpecKeys), std::end(kTemplateSpecKeys), k) ==
        std::end(kTemplateSpecKeys))
      return fail(path, fmt::format("unknown field {} (a template's spec has {})", path,
                                    fmt::join(kTemplateSpecKeys, ", ")));
  }
  // The spec is a create request's fields: check it as one, field by field, so an error is
  // about the field it names.
  for (const auto& kv : spec) {
    if (kv.key() == "agents" || kv.key() == "guardrails") continue;
    json::object one;
    one[kv.key()] = kv.value();
    auto parsed = ParseCreateSessionRequest(one, defaults, ceiling);
    if (parsed.ok()) continue;
    const std::string& msg = parsed.status().message();
    std::string field = FieldOfMessage(msg);
    if (field.empty() || !(field == kv.key() || field.starts_with(std::string(kv.key()) + ".") ||
                           field.starts_with(std::string(kv.key()) + "[")))
      field = std::string(kv.key());
    std::string located = msg;
    if (size_t at = located.find(field); at != std::string::npos)
      located.insert(at, "spec.");
    else
      located = fmt::format("spec.{}: {}", std::string_view(kv.key()), msg);
    return fail("spec." + field, located);
  }
  t.spec_json = json::serialize(spec);
  return t;
}

json::object ToJson(const SessionTemplate& t) {
  json::object meta;
  meta["name"] = t.name;
  meta["owner"] = t.owner;
  meta["description"] = t.description;
  meta["visibility"] = t.visibility;
  json::array grants;
  for (const auto& g : t.shared_with) grants.emplace_back(g);
  meta["shared_with"] = std::move(grants);
  meta["created_at"] = FormatTime(t.created_at);
  meta["updated_at"] = FormatTime(t.updated_at);
  json::object o;
  o["kind"] = "SessionTemplate";
  o["apiVersion"] = "hutch/v1";
  o["metadata"] = std::move(meta);
  boost::system::error_code ec;
  json::value spec = json::parse(t.spec_json, ec);
  o["spec"] = ec || !spec.is_object() ? json::value(json::object()) : std::move(spec);
  return o;
}

json::object MergeTemplate(const json::object& spec, const json::object& request) {
  json::object out = spec;
  for (const auto& kv : request) {
    std::string_view k = kv.key();
    bool merge = k == "env" || k == "labels" || k == "metadata" || k == "resources";
    json::value* base = out.if_contains(k);
    if (merge && base && base->is_object() && kv.value().is_object()) {
      for (const auto& inner : kv.value().get_object())
        base->as_object()[inner.key()] = inner.value();
      continue;
    }
    out[k] = kv.value();
  }
  return out;
}

bool TemplateSharedWith(const SessionTemplate& t, std::string_view user_id, std::string_view role,
                        std::string_view workshop_id) {
  if (t.owner == user_id || t.visibility == "public") return true;
  for (const auto& g : t.shared_with) {
    if (g == user_id) return true;
    if (g.starts_with("role:") && std::string_view(g).substr(5) == role) return true;
    if (!workshop_id.empty() && g.starts_with("workshop:") &&
        std::string_view(g).substr(9) == workshop_id)
      return true;
  }
  return false;
}

}  // namespace hutch::core
