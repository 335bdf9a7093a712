#include "agent/message_bridge.h"

#include <fcntl.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <cerrno>
#include <condition_variable>
#include <cstring>
#include <map>
#include <mutex>
#include <string>
#include <vector>

#include "agent/bridge_protocol.h"
#include "agent/frame_io.h"
#include "common/unique_fd.h"

namespace hutch::agent {

namespace {

constexpr int kPollMs = 200;  // how soon a loop that was taken over notices
constexpr int64_t kWriteTimeoutMs = 5000;

struct Local {
  UniqueFd fd;
  std::string hello;  // the first line, replayed to every server that attaches
  std::string in;     // bytes read, not yet a whole line
  std::string out;    // bytes for the process, not yet written
};

// Everything below is touched by the one attached loop; `g_mu` hands that role over.
std::mutex g_mu;
std::condition_variable g_cv;
bool g_active = false;
uint64_t g_generation = 0;
int g_listen = -1;  // made once by Listen, open for the agent's life
uint32_t g_next_conn = 1;
std::map<uint32_t, Local> g_locals;

bool Listen() {
  if (g_listen >= 0) return true;
  mkdir("/run", 0755);
  mkdir(kMessageSocketDir, 0755);
  UniqueFd fd(socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0));
  if (!fd) return false;
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  strncpy(addr.sun_path, kMessageSocketPath, sizeof addr.sun_path - 1);
  unlink(kMessageSocketPath);
  if (bind(fd.get(), reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0 ||
      listen(fd.get(), 64) != 0) {
    return false;
  }
  // Every user of the sandbox may run an agent.
  chmod(kMessageSocketPath, 0666);
  g_listen = fd.Release();
  return true;
}

class Bridge {
 public:
  Bridge(int fd, FrameParser* parser, uint32_t stream, uint64_t generation)
      : fd_(fd), parser_(parser), stream_(stream), generation_(generation) {}

  void Run() {
    if (!Send(MessageType::kMessageAttach, "")) return;
    for (auto& [id, local] : g_locals)
      if (!local.hello.empty() && !Send(MessageType::kLocalLine, EncodeLocalLine(id, local.hello)))
        return;
    while (Step()) {
    }
  }

 private:
  bool Send(MessageType type, std::string_view payload) {
    std::string error;
    return WriteFrame(fd_, type, stream_, payload, MonotonicMs() + kWriteTimeoutMs, &error) ==
           IoStatus::kOk;
  }

  void Drop(uint32_t id, bool tell) {
    auto it = g_locals.find(id);
    if (it == g_locals.end()) return;
    g_locals.erase(it);  // closes the local connection
    if (tell) Send(MessageType::kLocalClosed, EncodeLocalLine(id, ""));
  }

  // One round: poll, then serve what is ready. False when the server went away or another
  // attach took over.
  bool Step() {
    {
      std::lock_guard lock(g_mu);
      if (g_generation != generation_) return false;
    }
    std::vector<pollfd> fds{{fd_, POLLIN, 0}, {g_listen, POLLIN, 0}};
    std::vector<uint32_t> ids;
    for (auto& [id, local] : g_locals) {
      fds.push_back(
          {local.fd.get(), static_cast<short>(POLLIN | (local.out.empty() ? 0 : POLLOUT)), 0});
      ids.push_back(id);
    }
    // A frame the parser holds already needs no poll.
    int n = parser_->buffered() > 0 ? 0 : poll(fds.data(), fds.size(), kPollMs);
    if (n < 0 && errno != EINTR) return false;
    if (parser_->buffered() > 0 || (fds[0].revents & (POLLIN | POLLHUP | POLLERR))) {
      if (!ServerFrame()) return false;
    }
    if (fds[1].revents & POLLIN) Accept();
    for (size_t i = 2; i < fds.size(); ++i) {
      if (fds[i].revents == 0) continue;
      uint32_t id = ids[i - 2];
      if (fds[i].revents & POLLOUT) Flush(id);
      if (fds[i].revents & (POLLIN | POLLHUP | POLLERR)) {
        if (!ReadLocal(id)) return false;
      }
    }
    return true;
  }

  bool ServerFrame() {
    Frame frame;
    std::string error;
    if (ReadFrame(fd_, parser_, &frame, MonotonicMs() + kWriteTimeoutMs, &error) != IoStatus::kOk)
      return false;
    LocalLine line;
    if (frame.type == MessageType::kLocalLine && DecodeLocalLine(frame.payload, &line)) {
      auto it = g_locals.find(line.conn);
      if (it != g_locals.end()) {
        it->second.out += line.line;
        it->second.out += '\n';
        Flush(line.conn);
      }
      return true;
    }
    if (frame.type == MessageType::kLocalClosed && DecodeLocalLine(frame.payload, &line)) {
      Drop(line.conn, false);
      return true;
    }
    return false;  // nothing else belongs on this connection
  }

  void Accept() {
    for (;;) {
      UniqueFd fd(accept4(g_listen, nullptr, nullptr, SOCK_CLOEXEC | SOCK_NONBLOCK));
      if (!fd) return;
      g_locals[g_next_conn++].fd = std::move(fd);
    }
  }

  void Flush(uint32_t id) {
    Local& l = g_locals[id];
    while (!l.out.empty()) {
      ssize_t n = send(l.fd.get(), l.out.data(), l.out.size(), MSG_NOSIGNAL);
      if (n <= 0) return;  // full (POLLOUT comes back) or gone (POLLHUP does)
      l.out.erase(0, static_cast<size_t>(n));
    }
  }

  // Reads what the process wrote and passes on each whole line. False when the server is gone.
  bool ReadLocal(uint32_t id) {
    Local& l = g_locals[id];
    char buf[16384];
    ssize_t n = recv(l.fd.get(), buf, sizeof buf, 0);
    if (n < 0 && (errno == EAGAIN || errno == EINTR)) return true;
    if (n <= 0) {
      Drop(id, true);
      return true;
    }
    l.in.append(buf, static_cast<size_t>(n));
    size_t start = 0;
    for (size_t nl; (nl = l.in.find('\n', start)) != std::string::npos; start = nl + 1) {
      std::string_view line(l.in.data() + start, nl - start);
      if (line.empty()) continue;
      if (l.hello.empty()) l.hello = line;
      if (!Send(MessageType::kLocalLine, EncodeLocalLine(id, line))) return false;
    }
    l.in.erase(0, start);
    if (l.in.size() > kMaxLocalLine) Drop(id, true);
    return true;
  }

  int fd_;
  FrameParser* parser_;
  uint32_t stream_;
  uint64_t generation_;
};

}  // namespace

void ServeMessageBridge(int fd, FrameParser* parser, uint32_t stream_id) {
  uint64_t generation;
  {
    std::unique_lock lock(g_mu);
    generation = ++g_generation;
    // The loop attached before notices within kPollMs and leaves.
    g_cv.wait(lock, [] { return !g_active; });
    if (generation != g_generation) return;  // a later attach came meanwhile
    if (!Listen()) {
      std::string error;
      WriteFrame(fd, MessageType::kError, stream_id,
                 EncodeError(ErrorMessage{
                     ErrorCode::kInternal,
                     std::string("listen on ") + kMessageSocketPath + ": " + strerror(errno)}),
                 MonotonicMs() + kWriteTimeoutMs, &error);
      return;
    }
    g_active = true;
  }
  Bridge(fd, parser, stream_id, generation).Run();
  {
    std::lock_guard lock(g_mu);
    g_active = false;
  }
  g_cv.notify_all();
}

}  // namespace hutch::agent
