#include "common/status.h"

#include <cerrno>
#include <cstring>

#include <fmt/format.h>

namespace hutch {

namespace {
struct CodeInfo {
  Code code;
  std::string_view name;
  int http;
};
constexpr CodeInfo kCodes[] = {
    {Code::kOk, "ok", 200},
    {Code::kInvalidArgument, "invalid_argument", 400},
    {Code::kUnauthenticated, "unauthenticated", 401},
    {Code::kPermissionDenied, "permission_denied", 403},
    {Code::kNotFound, "not_found", 404},
    {Code::kConflict, "conflict", 409},
    {Code::kPayloadTooLarge, "payload_too_large", 413},
    {Code::kResourceExhausted, "resource_exhausted", 429},
    {Code::kInsufficientStorage, "insufficient_storage", 507},
    {Code::kUnavailable, "unavailable", 503},
    {Code::kInternal, "internal", 500},
};
}  // namespace

std::string_view CodeName(Code code) {
  for (const auto& c : kCodes)
    if (c.code == code) return c.name;
  return "internal";
}

int HttpStatus(Code code) {
  for (const auto& c : kCodes)
    if (c.code == code) return c.http;
  return 500;
}

Code CodeFromName(std::string_view name) {
  for (const auto& c : kCodes)
    if (c.name == name) return c.code;
  return Code::kInternal;
}

std::string Status::ToString() const {
  if (ok()) return "ok";
  return fmt::format("{}: {}", CodeName(code_), message_);
}

Status Status::WithContext(std::string_view context) const {
  if (ok()) return *this;
  return Status(code_, fmt::format("{}: {}", context, message_));
}

Status ErrnoError(std::string_view context, int err) {
  Code code = Code::kInternal;
  switch (err) {
    case ENOENT:
      code = Code::kNotFound;
      break;
    case ENOSPC:
    case EDQUOT:
      code = Code::kInsufficientStorage;
      break;
    case EACCES:
    case EPERM:
      code = Code::kPermissionDenied;
      break;
    case EEXIST:
      code = Code::kConflict;
      break;
    default:
      break;
  }
  return Status(code, fmt::format("{}: {} ({})", context, std::strerror(err),
                                  strerrorname_np(err) ? strerrorname_np(err) : "?"));
}

}  // namespace hutch
