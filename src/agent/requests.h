// The requests a connection answers with one frame and no state on its stream: a
// run-to-completion exec, background processes (start, list, signal, stdin), services (start,
// list, stop), the listening ports, the session log and the interrupt of foreground jobs. The
// operations that keep a stream open (streaming exec, attach, TCP relay) are streams.cc's.
#pragma once

#include <string>

#include "agent/protocol.h"
#include "agent/streams.h"

namespace hutch::agent {

// Appends the answer to `frame` (a result, or an Error on its stream) to *out and returns true;
// false, with nothing appended, when frame.type is not one of these requests. A run-to-
// completion exec blocks until the command is over.
bool AnswerRequest(const Frame& frame, const StreamContext& ctx, std::string* out);

}  // namespace hutch::agent
