#include "agent/frame_io.h"

#include <poll.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

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

// After `call` failed with errno EAGAIN: waits until `fd` is ready for `events`. kOk means try
// again; anything else is the answer, with *error saying what happened.
IoStatus AwaitReady(int fd, short events, int64_t deadline_ms, const char* call,
                    std::string* error) {
  int err = WaitFor(fd, events, deadline_ms);
  if (err == 0) return IoStatus::kOk;
  if (err == ETIMEDOUT) {
    *error = std::string(call) + ": timed out";
    return IoStatus::kTimeout;
  }
  *error = "poll: " + ErrnoName(err);
  return IoStatus::kError;
}

// The fds that came with a message: the first into *received unless it holds one, the rest
// closed.
void TakeFds(msghdr& msg, int* received) {
  for (cmsghdr* c = CMSG_FIRSTHDR(&msg); c; c = CMSG_NXTHDR(&msg, c)) {
    if (c->cmsg_level != SOL_SOCKET || c->cmsg_type != SCM_RIGHTS) continue;
    size_t count = (c->cmsg_len - CMSG_LEN(0)) / sizeof(int);
    for (size_t i = 0; i < count; ++i) {
      int got;
      memcpy(&got, CMSG_DATA(c) + i * sizeof(int), sizeof(int));
      if (*received < 0) {
        *received = got;
      } else {
        close(got);
      }
    }
  }
}

// Reads until `parser` holds a whole frame. With `received`, fds that come with the bytes are
// taken (the first kept in *received, any other closed); without, recv discards them.
IoStatus ReadFrameFrom(int fd, FrameParser* parser, Frame* out, int* received, int64_t deadline_ms,
                       std::string* error) {
  const char* call = received ? "recvmsg" : "recv";
  char buf[64 * 1024];
  alignas(cmsghdr) char control[CMSG_SPACE(sizeof(int) * 4)];
  for (;;) {
    switch (parser->Next(out, error)) {
      case FrameParser::Result::kFrame:
        return IoStatus::kOk;
      case FrameParser::Result::kError:
        return IoStatus::kMalformed;
      case FrameParser::Result::kNeedMore:
        break;
    }
    iovec iov{buf, sizeof buf};
    msghdr msg;
    memset(&msg, 0, sizeof msg);
    msg.msg_iov = &iov;
    msg.msg_iovlen = 1;
    if (received) {
      msg.msg_control = control;
      msg.msg_controllen = sizeof control;
    }
    ssize_t n = recvmsg(fd, &msg, MSG_DONTWAIT | MSG_CMSG_CLOEXEC);
    if (n >= 0 && received) TakeFds(msg, received);
    if (n > 0) {
      parser->Append(std::string_view(buf, static_cast<size_t>(n)));
      continue;
    }
    if (n == 0) {
      *error = parser->buffered() == 0 ? "connection closed" : "connection closed inside a frame";
      return parser->buffered() == 0 ? IoStatus::kClosed : IoStatus::kError;
    }
    if (errno == EINTR) continue;
    if (errno == EAGAIN) {
      IoStatus st = AwaitReady(fd, POLLIN, deadline_ms, call, error);
      if (st != IoStatus::kOk) return st;
      continue;
    }
    *error = std::string(call) + ": " + ErrnoName(errno);
    return IoStatus::kError;
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
      IoStatus st = AwaitReady(fd, POLLOUT, deadline_ms, "send", error);
      if (st != IoStatus::kOk) return st;
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
  return ReadFrameFrom(fd, parser, out, nullptr, deadline_ms, error);
}

IoStatus WriteFrameWithFd(int fd, MessageType type, uint32_t stream_id, std::string_view payload,
                          int pass_fd, int64_t deadline_ms, std::string* error) {
  std::string frame = EncodeFrame(type, stream_id, payload);
  iovec iov{frame.data(), frame.size()};
  alignas(cmsghdr) char control[CMSG_SPACE(sizeof(int))];
  memset(control, 0, sizeof control);
  msghdr msg;
  memset(&msg, 0, sizeof msg);
  msg.msg_iov = &iov;
  msg.msg_iovlen = 1;
  msg.msg_control = control;
  msg.msg_controllen = sizeof control;
  cmsghdr* c = CMSG_FIRSTHDR(&msg);
  c->cmsg_level = SOL_SOCKET;
  c->cmsg_type = SCM_RIGHTS;
  c->cmsg_len = CMSG_LEN(sizeof(int));
  memcpy(CMSG_DATA(c), &pass_fd, sizeof(int));
  for (;;) {
    ssize_t n = sendmsg(fd, &msg, MSG_DONTWAIT | MSG_NOSIGNAL);
    if (n >= 0) {
      // The fd went with the first byte; the rest (if the socket took only part) goes plain.
      return WriteAll(fd, std::string_view(frame).substr(static_cast<size_t>(n)), deadline_ms,
                      error);
    }
    if (errno == EINTR) continue;
    if (errno == EAGAIN) {
      IoStatus st = AwaitReady(fd, POLLOUT, deadline_ms, "sendmsg", error);
      if (st != IoStatus::kOk) return st;
      continue;
    }
    *error = "sendmsg: " + ErrnoName(errno);
    return IoStatus::kError;
  }
}

IoStatus ReadFrameWithFd(int fd, FrameParser* parser, Frame* out, int* received,
                         int64_t deadline_ms, std::string* error) {
  return ReadFrameFrom(fd, parser, out, received, deadline_ms, error);
}

}  // namespace hutch::agent
