// The agent's side of agents and messages (docs/agents.md): a unix socket inside the sandbox
// (bridge_protocol.h's kMessageSocketPath) that agent processes connect to, relayed line by line
// to the server over a connection that sent MessageAttach.
//
// The agent keeps no messages and parses no JSON: it numbers local connections, remembers each
// one's first line (the process's hello) and passes lines both ways. Lines whose top-level
// "type" is "activity" (sent before any hello) are not relayed: the agent keeps them, numbered,
// in a bounded buffer until the server reads them (ActivityRead). Local connections outlive
// the server's: while no server is attached their lines wait in the socket buffers (the agent
// does not read them), and a server that attaches again first hears every open connection's
// hello again, so it can deliver what was not acknowledged (at-least-once).
#pragma once

#include "agent/bridge_protocol.h"
#include "agent/protocol.h"

namespace hutch::agent {

// Listens on the message socket from the agent's start and serves it on a thread of its own
// while no server is attached, so programs can write activity lines (docs/agents.md) to any
// session's socket. False (errno set) when the socket or the thread cannot be made. Call once,
// after the seccomp filter is loaded (it must cover the thread).
bool StartMessageEndpoint();

// ActivityRead: when `instance` is this agent's, forgets the activity lines numbered up to
// `after` and answers those past it; for another instance (a reader that knew an earlier agent
// of the session, or none) forgets nothing and answers from the first. At most a batch's worth,
// with this agent's instance id and how many lines were lost.
ActivityBatch ReadActivity(const std::string& instance, uint64_t after);

// Serves MessageAttach on `fd` (its Hello done, `parser` holding what was read beyond) until the
// server goes away or another attach takes over. Only one server is attached at a time.
void ServeMessageBridge(int fd, FrameParser* parser, uint32_t stream_id);

}  // namespace hutch::agent
