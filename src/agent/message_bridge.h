// The agent's side of agents and messages (docs/agents.md): a unix socket inside the sandbox
// (bridge_protocol.h's kMessageSocketPath) that agent processes connect to, relayed line by line
// to the server over a connection that sent MessageAttach.
//
// The agent keeps no messages and parses no JSON: it numbers local connections, remembers each
// one's first line (the process's hello) and passes lines both ways. Local connections outlive
// the server's: while no server is attached their lines wait in the socket buffers (the agent
// does not read them), and a server that attaches again first hears every open connection's
// hello again, so it can deliver what was not acknowledged (at-least-once).
#pragma once

#include "agent/protocol.h"

namespace hutch::agent {

// Serves MessageAttach on `fd` (its Hello done, `parser` holding what was read beyond) until the
// server goes away or another attach takes over. Only one server is attached at a time.
void ServeMessageBridge(int fd, FrameParser* parser, uint32_t stream_id);

}  // namespace hutch::agent
