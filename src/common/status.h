// Errors are values: Status carries a code that maps 1:1 to the API's error codes and a message
// that says what was being done. Result<T> holds either a T or a non-OK Status.
#pragma once

#include <cassert>
#include <string>
#include <string_view>
#include <utility>
#include <variant>

namespace hutch {

// The codes of DESIGN.md §4, in the order of the table there.
enum class Code {
  kOk,
  kInvalidArgument,      // 400
  kUnauthenticated,      // 401
  kPermissionDenied,     // 403
  kNotFound,             // 404
  kConflict,             // 409
  kPayloadTooLarge,      // 413
  kResourceExhausted,    // 429
  kInsufficientStorage,  // 507
  kUnavailable,          // 503
  kInternal,             // 500
};

// "invalid_argument", "not_found", … as the API spells them.
std::string_view CodeName(Code code);
int HttpStatus(Code code);
// Inverse of CodeName; unknown names map to kInternal.
Code CodeFromName(std::string_view name);

class [[nodiscard]] Status {
 public:
  Status() = default;
  Status(Code code, std::string message) : code_(code), message_(std::move(message)) {}

  static Status Ok() { return Status(); }

  bool ok() const { return code_ == Code::kOk; }
  Code code() const { return code_; }
  const std::string& message() const { return message_; }
  // "not_found: session ses_x" — for logs, never for API bodies.
  std::string ToString() const;

  // Returns a copy whose message is prefixed with `context: `.
  Status WithContext(std::string_view context) const;

 private:
  Code code_ = Code::kOk;
  std::string message_;
};

inline Status InvalidArgument(std::string m) {
  return Status(Code::kInvalidArgument, std::move(m));
}
inline Status Unauthenticated(std::string m) {
  return Status(Code::kUnauthenticated, std::move(m));
}
inline Status PermissionDenied(std::string m) {
  return Status(Code::kPermissionDenied, std::move(m));
}
inline Status NotFound(std::string m) { return Status(Code::kNotFound, std::move(m)); }
inline Status Conflict(std::string m) { return Status(Code::kConflict, std::move(m)); }
inline Status PayloadTooLarge(std::string m) {
  return Status(Code::kPayloadTooLarge, std::move(m));
}
inline Status ResourceExhausted(std::string m) {
  return Status(Code::kResourceExhausted, std::move(m));
}
inline Status Unavailable(std::string m) { return Status(Code::kUnavailable, std::move(m)); }
inline Status Internal(std::string m) { return Status(Code::kInternal, std::move(m)); }

// The one place that turns errno into a Status: "context: strerror (EBUSY)". ENOENT maps to
// not_found, ENOSPC/EDQUOT to insufficient_storage, EACCES/EPERM to permission_denied, the rest
// to internal.
Status ErrnoError(std::string_view context, int err);

template <typename T>
class [[nodiscard]] Result {
 public:
  Result(T value) : v_(std::move(value)) {}        // NOLINT: implicit by design, like std::expected
  Result(Status status) : v_(std::move(status)) {  // NOLINT
    assert(!std::get<Status>(v_).ok());
  }

  bool ok() const { return std::holds_alternative<T>(v_); }
  const Status& status() const {
    static const Status kOk;
    return ok() ? kOk : std::get<Status>(v_);
  }
  T& value() & { return std::get<T>(v_); }
  const T& value() const& { return std::get<T>(v_); }
  T&& value() && { return std::get<T>(std::move(v_)); }
  T* operator->() { return &value(); }
  const T* operator->() const { return &value(); }
  T& operator*() & { return value(); }
  const T& operator*() const& { return value(); }

 private:
  std::variant<T, Status> v_;
};

}  // namespace hutch

#define HUTCH_CONCAT_INNER(a, b) a##b
#define HUTCH_CONCAT(a, b) HUTCH_CONCAT_INNER(a, b)

#define RETURN_IF_ERROR(expr)     \
  do {                            \
    ::hutch::Status _st = (expr); \
    if (!_st.ok()) return _st;    \
  } while (0)

#define ASSIGN_OR_RETURN_IMPL(tmp, lhs, expr) \
  auto tmp = (expr);                          \
  if (!tmp.ok()) return tmp.status();         \
  lhs = std::move(tmp).value()

#define ASSIGN_OR_RETURN(lhs, expr) \
  ASSIGN_OR_RETURN_IMPL(HUTCH_CONCAT(_result_, __LINE__), lhs, expr)
