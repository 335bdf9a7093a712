// The agent's errors are Status values (common/status.h) inside the agent; only where an answer
// leaves for the client does one become the wire's ErrorMessage (protocol.h). The host side
// maps it back with StatusFromAgentError (client.h), so a code survives the round trip.
#pragma once

#include <string>
#include <string_view>
#include <utility>

#include "agent/protocol.h"
#include "common/status.h"

namespace hutch::agent {

// not_found, invalid_argument, resource_exhausted, unavailable and unauthenticated keep their
// name, conflict is kAlreadyExists; every other code is kInternal.
ErrorCode WireErrorCode(Code code);
ErrorMessage ToErrorMessage(const Status& status);

}  // namespace hutch::agent

namespace hutch::agent {

// The wire's decoders (shared with the host, which links no Status of the agent's) report into
// a string; inside the agent a decoded payload is a Result. Its error is the decoder's message,
// which the caller answers as ErrorCode::kMalformed.
template <typename T>
Result<T> DecodePayload(bool (*decode)(std::string_view, T*, std::string*),
                        std::string_view payload) {
  T value;
  std::string error;
  if (!decode(payload, &value, &error)) return InvalidArgument(std::move(error));
  return value;
}

}  // namespace hutch::agent
