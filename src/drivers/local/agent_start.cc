#include "drivers/local/agent_start.h"

#include <poll.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>

#include <fmt/format.h>
#include <openssl/rand.h>

#include "common/ids.h"
#include "common/time.h"
#include "sandbox/fs.h"

namespace hutch::drivers::local {

Result<std::string> ReadStatusLine(int fd, int64_t deadline_ms) {
  std::string line;
  for (;;) {
    size_t nl = line.find('\n');
    if (nl != std::string::npos) return line.substr(0, nl);
    int64_t left = deadline_ms - MonotonicMillis();
    if (left <= 0) return Unavailable("timed out");
    pollfd p{fd, POLLIN, 0};
    int n = poll(&p, 1, static_cast<int>(left));
    if (n < 0 && errno != EINTR) return ErrnoError("poll status", errno);
    if (n <= 0) continue;
    char buf[512];
    ssize_t r = read(fd, buf, sizeof buf);
    if (r < 0) {
      if (errno == EINTR || errno == EAGAIN) continue;
      return ErrnoError("read status", errno);
    }
    if (r == 0) return line;
    line.append(buf, static_cast<size_t>(r));
    if (line.size() > 4096) return line.substr(0, 4096);
  }
}

// A new sandbox's secret (docs/architecture.md, "One credential scheme"): 32 random bytes, hex.
Result<std::string> NewSandboxSecret() {
  unsigned char bytes[32];
  if (RAND_bytes(bytes, sizeof bytes) != 1) return Internal("RAND_bytes failed: no randomness");
  return HexEncode(std::string_view(reinterpret_cast<const char*>(bytes), sizeof bytes));
}

// The last lines of agent.log, for error messages.
std::string LogTail(const std::string& path) {
  auto text = sandbox::ReadFileToString(path);
  if (!text.ok() || text->empty()) return "";
  std::string t = *text;
  while (!t.empty() && t.back() == '\n') t.pop_back();
  if (t.size() > 1000) t = "…" + t.substr(t.size() - 1000);
  return " (agent.log: " + t + ")";
}

Status SendAll(int fd, std::string_view data) {
  size_t done = 0;
  while (done < data.size()) {
    // MSG_NOSIGNAL: an agent that died early must not SIGPIPE the server.
    ssize_t n = send(fd, data.data() + done, data.size() - done, MSG_NOSIGNAL);
    if (n < 0) {
      if (errno == EINTR) continue;
      return ErrnoError("send config to hutch-agent", errno);
    }
    done += static_cast<size_t>(n);
  }
  return Status::Ok();
}

// Sends the config with the detached mounts' fds riding on its first byte (SCM_RIGHTS).
Status SendConfig(int fd, std::string_view data, const std::vector<int>& fds) {
  size_t done = 0;
  if (!fds.empty()) {
    std::vector<char> control(CMSG_SPACE(sizeof(int) * fds.size()));
    iovec iov{const_cast<char*>(data.data()), data.size()};
    msghdr msg;
    memset(&msg, 0, sizeof msg);
    msg.msg_iov = &iov;
    msg.msg_iovlen = 1;
    msg.msg_control = control.data();
    msg.msg_controllen = control.size();
    cmsghdr* c = CMSG_FIRSTHDR(&msg);
    c->cmsg_level = SOL_SOCKET;
    c->cmsg_type = SCM_RIGHTS;
    c->cmsg_len = CMSG_LEN(sizeof(int) * fds.size());
    memcpy(CMSG_DATA(c), fds.data(), sizeof(int) * fds.size());
    ssize_t n;
    while ((n = sendmsg(fd, &msg, MSG_NOSIGNAL)) < 0 && errno == EINTR) {
    }
    if (n < 0) return ErrnoError("send config to hutch-agent", errno);
    done = static_cast<size_t>(n);
  }
  return SendAll(fd, data.substr(done));
}

// The agent's listening socket, made here: the agent never sees the host path it lives at.
// Only root (the server) may connect: the socket file is created 0600.
Result<UniqueFd> ListenAt(const std::string& path) {
  sockaddr_un addr;
  memset(&addr, 0, sizeof addr);
  addr.sun_family = AF_UNIX;
  if (path.size() >= sizeof addr.sun_path) return InvalidArgument("socket path too long: " + path);
  memcpy(addr.sun_path, path.data(), path.size());
  UniqueFd fd(socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0));
  if (!fd) return ErrnoError("socket", errno);
  if (bind(fd.get(), reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0) {
    return ErrnoError("bind " + path, errno);
  }
  if (chmod(path.c_str(), 0600) != 0) return ErrnoError("chmod " + path, errno);
  if (listen(fd.get(), 128) != 0) return ErrnoError("listen " + path, errno);
  return fd;
}

Status ConnectOnce(const std::string& path, std::string_view id) {
  sockaddr_un addr;
  memset(&addr, 0, sizeof addr);
  addr.sun_family = AF_UNIX;
  memcpy(addr.sun_path, path.data(), std::min(path.size(), sizeof addr.sun_path - 1));
  UniqueFd fd(socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0));
  if (!fd) return ErrnoError("socket", errno);
  if (connect(fd.get(), reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0 && errno != EAGAIN) {
    return Unavailable(fmt::format("agent of {} does not answer: connect: {}", id,
                                   strerrorname_np(errno) ? strerrorname_np(errno) : "?"));
  }
  return Status::Ok();
}

}  // namespace hutch::drivers::local
