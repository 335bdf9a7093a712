// Blocking frame I/O on a connected socket, with an optional deadline. Shared by the agent and
// its host-side client; standard library and libc only.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

#include "agent/protocol.h"

namespace hutch::agent {

inline constexpr int64_t kNoDeadline = -1;

// CLOCK_MONOTONIC in milliseconds.
int64_t MonotonicMs();
// "ECONNREFUSED"; the symbolic name of an errno value.
std::string ErrnoName(int err);

enum class IoStatus {
  kOk,
  kClosed,     // the peer closed the connection (cleanly, between frames)
  kTimeout,    // the deadline passed
  kError,      // a socket error, or a connection closed inside a frame
  kMalformed,  // the byte stream is not a frame sequence
};

// Writes all of `data`. Never raises SIGPIPE. *error says what failed, e.g. "send: EPIPE".
IoStatus WriteAll(int fd, std::string_view data, int64_t deadline_ms, std::string* error);
IoStatus WriteFrame(int fd, MessageType type, uint32_t stream_id, std::string_view payload,
                    int64_t deadline_ms, std::string* error);

// Reads the next frame, buffering in *parser whatever arrives beyond it.
IoStatus ReadFrame(int fd, FrameParser* parser, Frame* out, int64_t deadline_ms,
                   std::string* error);

// The same over a unix socket, with an fd passed along (SCM_RIGHTS): WriteFrameWithFd sends
// `pass_fd` with the frame's first byte; ReadFrameWithFd reads with recvmsg, so that such an fd
// is not lost, and hands the first one that came into *received (close-on-exec; more than one
// are closed). recv(2) would drop the fd, so a reader that expects one must read with this.
IoStatus WriteFrameWithFd(int fd, MessageType type, uint32_t stream_id, std::string_view payload,
                          int pass_fd, int64_t deadline_ms, std::string* error);
IoStatus ReadFrameWithFd(int fd, FrameParser* parser, Frame* out, int* received,
                         int64_t deadline_ms, std::string* error);

}  // namespace hutch::agent
