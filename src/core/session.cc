#include "core/session.h"

#include <fmt/format.h>

#include <array>
#include <utility>

namespace hutch::core {

namespace {
constexpr std::array<std::pair<SessionState, std::string_view>, 11> kStates = {{
    {SessionState::kScheduled, "scheduled"},
    {SessionState::kPending, "pending"},
    {SessionState::kProvisioning, "provisioning"},
    {SessionState::kRunning, "running"},
    {SessionState::kPaused, "paused"},
    {SessionState::kStopping, "stopping"},
    {SessionState::kStopped, "stopped"},
    {SessionState::kError, "error"},
    {SessionState::kTerminating, "terminating"},
    {SessionState::kTerminated, "terminated"},
    {SessionState::kCancelled, "cancelled"},
}};

constexpr std::array<std::pair<Reason, std::string_view>, 11> kReasons = {{
    {Reason::kUser, "user"},
    {Reason::kTtl, "ttl"},
    {Reason::kIdle, "idle"},
    {Reason::kSchedule, "schedule"},
    {Reason::kQuota, "quota"},
    {Reason::kError, "error"},
    {Reason::kServerRestart, "server_restart"},
    {Reason::kWorkshop, "workshop"},
    {Reason::kAdmin, "admin"},
    {Reason::kCompleted, "completed"},
    {Reason::kDependency, "dependency"},
}};
}  // namespace

std::string_view ToString(SessionState s) {
  for (const auto& [v, n] : kStates)
    if (v == s) return n;
  return "error";
}

std::optional<SessionState> ParseSessionState(std::string_view s) {
  for (const auto& [v, n] : kStates)
    if (n == s) return v;
  return std::nullopt;
}

bool IsFinal(SessionState s) {
  return s == SessionState::kTerminated || s == SessionState::kCancelled;
}

std::string_view ToString(Reason r) {
  for (const auto& [v, n] : kReasons)
    if (v == r) return n;
  return "error";
}

std::optional<Reason> ParseReason(std::string_view s) {
  for (const auto& [v, n] : kReasons)
    if (n == s) return v;
  return std::nullopt;
}

bool IsValidName(std::string_view name) {
  if (name.empty() || name.size() > 63) return false;
  auto alnum = [](char c) { return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9'); };
  if (!alnum(name.front()) || !alnum(name.back())) return false;
  for (char c : name)
    if (!alnum(c) && c != '-') return false;
  return true;
}

std::string CheckTitle(std::string_view title) {
  size_t chars = 0;
  for (size_t i = 0; i < title.size(); ++chars) {
    const auto lead = static_cast<unsigned char>(title[i]);
    // Decode one code point by hand: the length from the lead byte, then continuation bytes.
    // Overlong forms and surrogates are refused as a strict decoder would.
    size_t n = lead < 0x80                   ? 1
               : lead >= 0xC2 && lead < 0xE0 ? 2
               : lead >= 0xE0 && lead < 0xF0 ? 3
               : lead >= 0xF0 && lead < 0xF5 ? 4
                                             : 0;
    if (n == 0 || i + n > title.size()) return "is not valid UTF-8";
    uint32_t cp = n == 1 ? lead : lead & (0x7F >> n);
    for (size_t k = 1; k < n; ++k) {
      const auto b = static_cast<unsigned char>(title[i + k]);
      if ((b & 0xC0) != 0x80) return "is not valid UTF-8";
      cp = (cp << 6) | (b & 0x3F);
    }
    if ((n == 3 && cp < 0x800) || (n == 4 && (cp < 0x10000 || cp > 0x10FFFF)) ||
        (cp >= 0xD800 && cp <= 0xDFFF))
      return "is not valid UTF-8";
    // C0 (tabs and newlines too: a title is one line), DEL and C1.
    if (cp < 0x20 || (cp >= 0x7F && cp <= 0x9F))
      return fmt::format("must not contain control characters (U+{:04X} at byte {})", cp, i);
    i += n;
  }
  if (chars > kMaxTitleChars)
    return fmt::format("is longer than {} characters ({})", kMaxTitleChars, chars);
  return "";
}

std::string CheckVolumePath(std::string_view path) {
  if (path.empty() || path.front() != '/') return "must be an absolute path";
  if (path.size() > 1024) return "is longer than 1024 characters";
  if (path == "/") return "must not be / (the sandbox's root)";
  if (path.back() == '/') return "must not end with '/'";
  if (path.find('\0') != std::string_view::npos) return "contains a NUL byte";
  size_t start = 1;
  while (start <= path.size()) {
    size_t end = path.find('/', start);
    if (end == std::string_view::npos) end = path.size();
    std::string_view part = path.substr(start, end - start);
    if (part.empty()) return "must not contain '//'";
    if (part == "." || part == "..") return "must not contain '.' or '..' components";
    start = end + 1;
  }
  for (std::string_view kernel : {"/proc", "/dev", "/sys"}) {
    if (path == kernel || (path.starts_with(kernel) && path[kernel.size()] == '/'))
      return fmt::format("must not be {} or below it (the kernel's filesystems)", kernel);
  }
  return "";
}

}  // namespace hutch::core
