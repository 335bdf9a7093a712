#include "sandbox/runc_process.h"

#include <cctype>

#include <fmt/format.h>

#include "common/json.h"
#include "sandbox/caps.h"
#include "sandbox/fs.h"
#include "sandbox/oci_seccomp.h"

namespace hutch::sandbox {

namespace {

uint32_t Id(const json::object& o, std::string_view key) {
  const json::value* v = o.if_contains(key);
  return v && v->is_number() ? static_cast<uint32_t>(v->to_number<int64_t>()) : 0;
}

// "CAP_KILL" → its number; -1 for a name this kernel's headers do not have.
int CapabilityNumber(std::string_view name) {
  for (int cap = 0; cap <= CAP_LAST_CAP; ++cap) {
    const char* known = CapabilityName(cap);
    if (!known || name.size() != std::string_view(known).size()) continue;
    bool same = true;
    for (size_t i = 0; i < name.size() && same; ++i)
      same = std::tolower(static_cast<unsigned char>(name[i])) == known[i];
    if (same) return cap;
  }
  return -1;
}

// The bundle directory runc recorded in state.json's config labels ("bundle=/path").
Result<std::string> BundleOf(const std::string& state_file) {
  auto text = ReadFileToString(state_file);
  if (!text.ok()) return NotFound(fmt::format("no runc state at {}", state_file));
  ASSIGN_OR_RETURN(json::object state, ParseJsonObject(*text));
  const json::value* config = state.if_contains("config");
  const json::value* labels =
      config && config->is_object() ? config->as_object().if_contains("labels") : nullptr;
  if (labels && labels->is_array()) {
    for (const json::value& l : labels->as_array()) {
      if (!l.is_string()) continue;
      std::string_view s = l.as_string();
      if (s.starts_with("bundle=")) return std::string(s.substr(7));
    }
  }
  return Internal(fmt::format("{} names no bundle", state_file));
}

}  // namespace

Result<RuncProcessSettings> RuncProcessSettingsOf(const std::string& root, std::string_view id) {
  if (id.empty() || id.find('/') != std::string_view::npos || id.starts_with("."))
    return InvalidArgument(fmt::format("bad container id '{}'", id));
  ASSIGN_OR_RETURN(std::string bundle, BundleOf(fmt::format("{}/{}/state.json", root, id)));
  std::string file = bundle + "/config.json";
  auto text = ReadFileToString(file);
  if (!text.ok()) return Internal(fmt::format("read {}: {}", file, text.status().message()));
  ASSIGN_OR_RETURN(json::object spec, ParseJsonObject(*text));
  RuncProcessSettings s;
  const json::value* process = spec.if_contains("process");
  if (process && process->is_object()) {
    const json::object& p = process->as_object();
    if (const json::value* user = p.if_contains("user"); user && user->is_object()) {
      s.uid = Id(user->as_object(), "uid");
      s.gid = Id(user->as_object(), "gid");
      if (const json::value* g = user->as_object().if_contains("additionalGids");
          g && g->is_array())
        for (const json::value& x : g->as_array())
          if (x.is_number()) s.groups.push_back(static_cast<uint32_t>(x.to_number<int64_t>()));
    }
    const json::value* caps = p.if_contains("capabilities");
    const json::value* bounding =
        caps && caps->is_object() ? caps->as_object().if_contains("bounding") : nullptr;
    if (bounding && bounding->is_array()) {
      for (const json::value& c : bounding->as_array()) {
        int n = c.is_string() ? CapabilityNumber(c.as_string()) : -1;
        if (n >= 0) s.capabilities |= uint64_t{1} << n;
      }
    }
    const json::value* nnp = p.if_contains("noNewPrivileges");
    s.no_new_privileges = nnp && nnp->is_bool() && nnp->as_bool();
  }
  const json::value* linux_spec = spec.if_contains("linux");
  const json::value* seccomp = linux_spec && linux_spec->is_object()
                                   ? linux_spec->as_object().if_contains("seccomp")
                                   : nullptr;
  if (seccomp && seccomp->is_object()) {
    auto program = CompileOciSeccomp(seccomp->as_object());
    if (!program.ok()) return program.status().WithContext(file);
    s.seccomp_filter = std::move(*program);
  }
  return s;
}

}  // namespace hutch::sandbox
