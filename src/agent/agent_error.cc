#include "agent/agent_error.h"

#include <utility>

namespace hutch::agent {

namespace {

// The codes whose wire value has the same name (kConflict is kAlreadyExists there).
constexpr std::pair<Code, ErrorCode> kSameName[] = {
    {Code::kInvalidArgument, ErrorCode::kInvalidArgument},
    {Code::kResourceExhausted, ErrorCode::kResourceExhausted},
    {Code::kNotFound, ErrorCode::kNotFound},
    {Code::kUnavailable, ErrorCode::kUnavailable},
    {Code::kUnauthenticated, ErrorCode::kUnauthenticated},
};

}  // namespace

ErrorCode WireErrorCode(Code code) {
  if (code == Code::kConflict) return ErrorCode::kAlreadyExists;
  for (const auto& [status_code, wire_code] : kSameName) {
    if (status_code == code) return wire_code;
  }
  return ErrorCode::kInternal;
}

ErrorMessage ToErrorMessage(const Status& status) {
  return ErrorMessage{WireErrorCode(status.code()), status.message()};
}

}  // namespace hutch::agent
