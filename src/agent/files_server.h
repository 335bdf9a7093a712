// The agent's side of the file operations (files_protocol.h): the session's files API, served
// from inside the sandbox. Paths are resolved by src/files relative to the agent's own root ("/"
// after pivot_root, i.e. the sandbox's root) with RESOLVE_IN_ROOT, as the sandbox's root user:
// what the agent creates is owned by root inside the sandbox without any id arithmetic.
#pragma once

#include "agent/protocol.h"

namespace hutch::agent {

// Serves the file operation `request` (a type IsFileRequest accepts) on connection `fd`,
// blocking, to its end; `parser` holds what was read past it. The caller closes the connection
// afterwards. Memory: one buffer of kFileChunk (and the operation's own, e.g. a listing),
// freed when it returns; the connection's thread hands the heap back when it ends (agent.cc).
void ServeFileRequest(int fd, FrameParser* parser, const Frame& request);

// Whether files may pass fds on a unix connection; called once at setup, before any
// connection. An agent whose clients come over TLS serves them on a socketpair to its own
// relay, which is unix but does not reach the client: it passes none (the client, whose
// transport says CarriesFds() false, asks for none either).
void AllowFdPassing(bool allowed);

}  // namespace hutch::agent
