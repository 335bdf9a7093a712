// Session templates (docs/server.md, "Templates"): a named, stored set of create-request fields
// — image, resources, env, labels, metadata, network, ttl_seconds, idle_timeout_seconds,
// on_idle, volumes, setup — that `POST /v1/sessions {template: NAME, …}` starts from.
//
// A template is written as a `kind: SessionTemplate` document in YAML or JSON (JSON is read as
// YAML, so both get line numbers):
//
//   kind: SessionTemplate
//   metadata: {name: py, description: "Python course"}
//   spec: {image: host, env: {A: "1"}, setup: ["pip install x"], volumes: [...]}
//
// The spec is checked exactly as a create request is (session_json.h), and every error names
// the field and the line it is on.
#pragma once

#include <string>
#include <string_view>
#include <vector>

#include "common/json.h"
#include "common/status.h"
#include "common/time.h"
#include "core/session.h"
#include "core/session_json.h"

namespace hutch::core {

struct SessionTemplate {
  std::string name;  // DNS label, unique per owner
  std::string owner;
  std::string description;
  std::string spec_json = "{}";  // the spec, as a JSON object of create-request fields
  // Who else may start sessions from it (docs/server.md, "Sharing templates"): everyone
  // ("public"), or only the owner and the grants in shared_with ("private").
  std::string visibility = "private";
  // Grants: a user id ("usr_…"), "role:ROLE", or "workshop:WORKSHOP-ID" (its participants).
  std::vector<std::string> shared_with;
  TimePoint created_at;
  TimePoint updated_at;
};

// Parses and checks a SessionTemplate document. Errors are invalid_argument with the line:
// "line 7: spec.resources.cpus must be between 0.01 and 2 (this server's cores)".
Result<SessionTemplate> ParseTemplateDocument(std::string_view text, const Resources& defaults,
                                              const ResourceCeiling& ceiling);

// {kind, metadata: {name, owner, description, visibility, shared_with, created_at, updated_at},
// spec}.
json::object ToJson(const SessionTemplate& t);

// The create request of a session from a template: the template's spec with the request's
// fields on top. env, labels, metadata and resources merge key by key (the request's win); any
// other field the request gives replaces the template's.
json::object MergeTemplate(const json::object& spec, const json::object& request);

// Whether a caller may start from `t`: its owner, anyone when it is public, and the users, roles
// and workshop participants (workshop_id: the workshop the caller is a participant of, or "") its
// grants name.
bool TemplateSharedWith(const SessionTemplate& t, std::string_view user_id, std::string_view role,
                        std::string_view workshop_id);

}  // namespace hutch::core
