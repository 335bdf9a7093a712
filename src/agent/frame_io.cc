#include "agent/frame_io.h"

#include <poll.h>
#include <sys/socket.h>
#include <time.h>

#include <cerrno>
#include <cstring>

namespace hutch::agent {

int64_t MonotonicMs() {
  timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return int64_t{ts.tv_sec} * 1000 + ts.tv_nsec / 1000000;
}

std::string ErrnoName(int err) {
  const char* name = strerrorname_np(err);
  return name ? name : "errno " + std::to_string(err);
}

namespace {

// Waits until fd is ready for `events` or the deadline passes. Returns 0, ETIMEDOUT or errno.
int WaitFor(int fd, short events, int64_t deadline_ms) {
  for (;;) {
    int timeout = -1;
    if (deadline_ms != kNoDeadline) {
      int64_t left = deadline_ms - MonotonicMs();
      if (left <= 0) return ETIMEDOUT;
      timeout = left > 1 << 30 ? 1 << 30 : static_cast<int>(left);
    }
    pollfd p{fd, events, 0};
    int n = poll(&p, 1, timeout);
    if (n > 0) return 0;   // ready, or an error/hangup the next call will report
    if (n == 0) continue;  // re-check the deadline
    if (errno != EINTR) return errno;
  }
}

}  // namespace

IoStatus WriteAll(int fd, std::string_view data, int64_t deadline_ms, std::string* error) {
  size_t done = 0;
  while (done < data.size()) {
    // MSG_DONTWAIT so a stuck peer cannot hold us past the deadline; MSG_NOSIGNAL so a closed
    // peer is EPIPE, not a process-killing SIGPIPE (the server does not ignore it).
    ssize_t n = send(fd, data.data() + done, data.size() - done, MSG_DONTWAIT | MSG_NOSIGNAL);
    if (n >= 0) {
      done += static_cast<size_t>(n);
      continue;
    }
    if (errno == EINTR) continue;
    if (errno == EAGAIN) {
      int err = WaitFor(fd, POLLOUT, deadline_ms);
      if (err == ETIMEDOUT) {
        *error = "send: timed out";
        return IoStatus::kTimeout;
      }
      if (err != 0) {
        *error = "poll: " + ErrnoName(err);
        return IoStatus::kError;
      }
      continue;
    }
    *error = "send: " + ErrnoName(errno);
    return IoStatus::kError;
  }
  return IoStatus::kOk;
}

IoStatus WriteFrame(int fd, MessageType type, uint32_t stream_id, std::string_view payload,
                    int64_t deadline_ms, std::string* error) {
  return WriteAll(fd, EncodeFrame(type, stream_id, payload), deadline_ms, error);
}

IoStatus ReadFrame(int fd, FrameParser* parser, Frame* out, int64_t deadline_ms,
                   std::string* error) {
  char buf[64 * 1024];
  for (;;) {
    switch (parser->Next(out, error)) {
      case FrameParser::Result::kFrame:
        return IoStatus::kOk;
      case FrameParser::Result::kError:
        return IoStatus::kMalformed;
      case FrameParser::Result::kNeedMore:
        break;
    }
    ssize_t n = recv(fd, buf, sizeof buf, MSG_DONTWAIT);
    if (n > 0) {
      parser->Append(std::string_view(buf, static_cast<size_t>(n)));
      continue;
    }
    if (n == 0) {
      if (parser->buffered() == 0) {
        *error = "connection closed";
        return IoStatus::kClosed;
      }
      *error = "connection closed inside a frame";
      return IoStatus::kError;
    }
    if (errno == EINTR) continue;
    if (errno == EAGAIN) {
      int err = WaitFor(fd, POLLIN, deadline_ms);
      if (err == ETIMEDOUT) {
        *error = "recv: timed out";
        return IoStatus::kTimeout;
      }
      if (err != 0) {
        *error = "poll: " + ErrnoName(err);
        return IoStatus::kError;
      }
      continue;
    }
    *error = "recv: " + ErrnoName(errno);
    return IoStatus::kError;
  }
}

}  // namespace hutch::agent
