#include "sandbox/oci_seccomp.h"

#include <seccomp.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <cctype>
#include <cerrno>
#include <memory>
#include <vector>

#include <fmt/format.h>

#include "common/unique_fd.h"

namespace hutch::sandbox {

namespace {

std::string Str(const json::object& o, std::string_view key) {
  const json::value* v = o.if_contains(key);
  return v && v->is_string() ? std::string(v->as_string()) : std::string();
}

uint64_t U64(const json::object& o, std::string_view key) {
  const json::value* v = o.if_contains(key);
  if (!v) return 0;
  if (v->is_uint64()) return v->as_uint64();
  if (v->is_int64()) return static_cast<uint64_t>(v->as_int64());
  return 0;
}

Result<uint32_t> Action(const std::string& name, const json::object& owner) {
  // errnoRet: the errno an SCMP_ACT_ERRNO rule answers (runc's default: EPERM).
  const json::value* e = owner.if_contains("errnoRet");
  uint32_t err = e && e->is_number() ? static_cast<uint32_t>(e->to_number<int64_t>()) : EPERM;
  if (name == "SCMP_ACT_ALLOW") return SCMP_ACT_ALLOW;
  if (name == "SCMP_ACT_ERRNO") return SCMP_ACT_ERRNO(err);
  if (name == "SCMP_ACT_KILL" || name == "SCMP_ACT_KILL_THREAD") return SCMP_ACT_KILL;
  if (name == "SCMP_ACT_KILL_PROCESS") return SCMP_ACT_KILL_PROCESS;
  if (name == "SCMP_ACT_TRAP") return SCMP_ACT_TRAP;
  if (name == "SCMP_ACT_LOG") return SCMP_ACT_LOG;
  // No tracer follows the shell: a traced call fails as runc's ERRNO fallback would.
  if (name == "SCMP_ACT_TRACE") return SCMP_ACT_ERRNO(err);
  return InvalidArgument(fmt::format("seccomp: action {} is not supported", name));
}

Result<scmp_compare> Compare(const std::string& op) {
  static constexpr std::pair<std::string_view, scmp_compare> kOps[] = {
      {"SCMP_CMP_NE", SCMP_CMP_NE},
      {"SCMP_CMP_LT", SCMP_CMP_LT},
      {"SCMP_CMP_LE", SCMP_CMP_LE},
      {"SCMP_CMP_EQ", SCMP_CMP_EQ},
      {"SCMP_CMP_GE", SCMP_CMP_GE},
      {"SCMP_CMP_GT", SCMP_CMP_GT},
      {"SCMP_CMP_MASKED_EQ", SCMP_CMP_MASKED_EQ}};
  for (const auto& [name, value] : kOps)
    if (name == op) return value;
  return InvalidArgument(fmt::format("seccomp: comparison {} is not supported", op));
}

// "SCMP_ARCH_X86_64" → libseccomp's token; 0 when it does not know the name.
uint32_t Arch(std::string name) {
  if (name.starts_with("SCMP_ARCH_")) name.erase(0, 10);
  for (char& c : name) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return seccomp_arch_resolve_name(name.c_str());
}

Status AddRule(scmp_filter_ctx ctx, uint32_t default_action, const json::object& rule) {
  ASSIGN_OR_RETURN(uint32_t action, Action(Str(rule, "action"), rule));
  // libseccomp refuses a rule that repeats the default; it would change nothing.
  if (action == default_action) return Status::Ok();
  std::vector<scmp_arg_cmp> cmps;
  if (const json::value* args = rule.if_contains("args"); args && args->is_array()) {
    for (const json::value& a : args->as_array()) {
      if (!a.is_object()) continue;
      const json::object& arg = a.as_object();
      ASSIGN_OR_RETURN(scmp_compare op, Compare(Str(arg, "op")));
      cmps.push_back(scmp_arg_cmp{static_cast<unsigned>(U64(arg, "index")), op, U64(arg, "value"),
                                  U64(arg, "valueTwo")});
    }
  }
  std::vector<std::string> names;
  if (const json::value* n = rule.if_contains("names"); n && n->is_array()) {
    for (const json::value& s : n->as_array())
      if (s.is_string()) names.emplace_back(s.as_string());
  }
  if (std::string one = Str(rule, "name"); !one.empty()) names.push_back(one);
  for (const std::string& name : names) {
    int nr = seccomp_syscall_resolve_name(name.c_str());
    if (nr == __NR_SCMP_ERROR) continue;
    int rc =
        seccomp_rule_add_array(ctx, action, nr, static_cast<unsigned>(cmps.size()), cmps.data());
    if (rc != 0) return ErrnoError(fmt::format("seccomp rule for {}", name), -rc);
  }
  return Status::Ok();
}

}  // namespace

Result<std::string> CompileOciSeccomp(const json::object& seccomp) {
  ASSIGN_OR_RETURN(uint32_t default_action, Action(Str(seccomp, "defaultAction"), seccomp));
  std::unique_ptr<void, void (*)(scmp_filter_ctx)> ctx(seccomp_init(default_action),
                                                       seccomp_release);
  if (!ctx) return Internal("seccomp_init failed");
  if (const json::value* archs = seccomp.if_contains("architectures"); archs && archs->is_array()) {
    for (const json::value& a : archs->as_array()) {
      uint32_t arch = a.is_string() ? Arch(std::string(a.as_string())) : 0;
      if (arch == 0) continue;
      int rc = seccomp_arch_add(ctx.get(), arch);
      // Another machine's architecture cannot be added here; runc skips it too.
      if (rc != 0 && rc != -EEXIST && rc != -EDOM && rc != -EINVAL)
        return ErrnoError("seccomp_arch_add", -rc);
    }
  }
  if (const json::value* rules = seccomp.if_contains("syscalls"); rules && rules->is_array()) {
    for (const json::value& r : rules->as_array())
      if (r.is_object()) RETURN_IF_ERROR(AddRule(ctx.get(), default_action, r.as_object()));
  }
  UniqueFd fd(static_cast<int>(syscall(SYS_memfd_create, "hutch-oci-seccomp", MFD_CLOEXEC)));
  if (!fd) return ErrnoError("memfd_create", errno);
  int rc = seccomp_export_bpf(ctx.get(), fd.get());
  if (rc != 0) return ErrnoError("seccomp_export_bpf", -rc);
  off_t size = lseek(fd.get(), 0, SEEK_END);
  if (size <= 0) return Internal("seccomp_export_bpf wrote nothing");
  std::string program(static_cast<size_t>(size), '\0');
  if (pread(fd.get(), program.data(), program.size(), 0) != size)
    return ErrnoError("read the seccomp program", errno);
  return program;
}

}  // namespace hutch::sandbox
