#include "agent/message_bridge.h"

#include <fcntl.h>
#include <poll.h>
#include <sys/eventfd.h>
#include <sys/random.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <cerrno>
#include <condition_variable>
#include <cstring>
#include <ctime>
#include <deque>
#include <map>
#include <mutex>
#include <string>
#include <system_error>
#include <thread>
#include <vector>

#include "agent/bridge_protocol.h"
#include "agent/frame_io.h"
#include "common/unique_fd.h"

namespace hutch::agent {

namespace {

constexpr int kPollMs = 200;  // how soon a loop that was taken over notices
constexpr int64_t kWriteTimeoutMs = 5000;
// The activity lines kept until a reader has them: a terminal's commands for minutes without a
// server, at no cost while empty.
constexpr size_t kActivityBytes = 256 * 1024;
constexpr size_t kActivityLinesMax = 2048;
// One ActivityRead answer carries at most this much.
constexpr size_t kActivityBatchBytes = 512 * 1024;

struct Local {
  UniqueFd fd;
  std::string hello;  // the first line, replayed to every server that attaches
  std::string in;     // bytes read, not yet a whole line (or held: see ReadLocal)
  std::string out;    // bytes for the process, not yet written
};

// Everything below is touched by the one loop that owns the locals (g_active): the endpoint's
// own, which serves while no server is attached, or an attached server's. `g_mu` hands over.
std::mutex g_mu;
std::condition_variable g_cv;
bool g_active = false;
int g_attaching = 0;  // attached loops that hold or wait for the locals
uint64_t g_generation = 0;
int g_listen = -1;  // made once by Listen, open for the agent's life
int g_wake = -1;    // an eventfd: an attach wakes the endpoint's loop from its poll
uint32_t g_next_conn = 1;
std::map<uint32_t, Local> g_locals;

// The activity lines, numbered; apart from the locals, since ActivityRead comes on any
// connection's thread.
std::mutex g_activity_mu;
std::deque<ActivityLine> g_activity;  // GUARDED_BY(g_activity_mu)
size_t g_activity_bytes = 0;          // GUARDED_BY(g_activity_mu)
uint64_t g_activity_seq = 0;          // GUARDED_BY(g_activity_mu): the last number given
uint64_t g_activity_dropped = 0;      // GUARDED_BY(g_activity_mu)
std::string g_instance;               // GUARDED_BY(g_activity_mu): made at the first use

uint64_t NowUnixMs() {
  timespec ts{};
  clock_gettime(CLOCK_REALTIME, &ts);
  return static_cast<uint64_t>(ts.tv_sec) * 1000 + static_cast<uint64_t>(ts.tv_nsec) / 1000000;
}

// REQUIRES: g_activity_mu held.
const std::string& Instance() {
  if (g_instance.empty()) {
    unsigned char bytes[8] = {};
    if (getrandom(bytes, sizeof bytes, 0) != static_cast<ssize_t>(sizeof bytes)) {
      uint64_t t = NowUnixMs() ^ static_cast<uint64_t>(getpid());
      memcpy(bytes, &t, sizeof bytes);
    }
    static const char kHex[] = "0123456789abcdef";
    for (unsigned char b : bytes) {
      g_instance += kHex[b >> 4];
      g_instance += kHex[b & 15];
    }
  }
  return g_instance;
}

void KeepActivity(std::string_view line) {
  std::lock_guard lock(g_activity_mu);
  if (line.size() > kMaxActivityLine) {
    ++g_activity_dropped;
    return;
  }
  // Full: the oldest go, and the reader hears how many were lost.
  while (!g_activity.empty() && (g_activity.size() >= kActivityLinesMax ||
                                 g_activity_bytes + line.size() > kActivityBytes)) {
    g_activity_bytes -= g_activity.front().line.size();
    g_activity.pop_front();
    ++g_activity_dropped;
  }
  g_activity.push_back(ActivityLine{++g_activity_seq, NowUnixMs(), std::string(line)});
  g_activity_bytes += line.size();
}

// Whether a line is an activity line: a JSON object whose top-level "type" is "activity". A
// small scan, not a parser (the agent parses no JSON): strings and nesting are followed so that
// a "type" inside a string or a nested object does not count; the server checks the rest.
bool IsActivityLine(std::string_view line) {
  int depth = 0;
  std::string last;  // the last string token at depth 1, while a ':' may follow it
  bool key_type = false;
  for (size_t i = 0; i < line.size(); ++i) {
    char c = line[i];
    if (c == '"') {
      std::string token;
      for (++i; i < line.size() && line[i] != '"'; ++i) {
        if (line[i] == '\\') {
          ++i;
          token += '\\';
        }
        if (i < line.size()) token += line[i];
      }
      if (depth != 1) continue;
      if (key_type) return token == "activity";
      last = std::move(token);
    } else if (c == ':') {
      key_type = depth == 1 && last == "type";
      last.clear();
    } else if (c == '{' || c == '[') {
      ++depth;
      key_type = false;
    } else if (c == '}' || c == ']') {
      --depth;
    } else if (c == ',') {
      key_type = false;
      last.clear();
    }
  }
  return false;
}

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

// One loop over the local connections. Attached (fd >= 0): relays the message lines of
// connections that said hello to the server on `fd`. Detached (fd < 0, the endpoint's own loop
// while no server is attached): reads only connections that have not said hello, so activity
// lines are kept at once while an agent's lines wait in its socket buffer, as before.
class Bridge {
 public:
  Bridge(int fd, FrameParser* parser, uint32_t stream, uint64_t generation)
      : fd_(fd), parser_(parser), stream_(stream), generation_(generation) {}

  void Run() {
    if (attached()) {
      if (!Send(MessageType::kMessageAttach, "")) return;
      for (auto& [id, local] : g_locals)
        if (!local.hello.empty() &&
            !Send(MessageType::kLocalLine, EncodeLocalLine(id, local.hello)))
          return;
      // Lines the detached loop read behind a hello and held.
      for (auto& [id, local] : g_locals)
        if (!local.hello.empty() && !PassLines(id)) return;
    }
    while (Step()) {
    }
  }

 private:
  bool attached() const { return fd_ >= 0; }

  bool Send(MessageType type, std::string_view payload) {
    std::string error;
    return WriteFrame(fd_, type, stream_, payload, MonotonicMs() + kWriteTimeoutMs, &error) ==
           IoStatus::kOk;
  }

  void Drop(uint32_t id, bool tell) {
    auto it = g_locals.find(id);
    if (it == g_locals.end()) return;
    bool said_hello = !it->second.hello.empty();
    g_locals.erase(it);  // closes the local connection
    if (tell && said_hello && attached()) Send(MessageType::kLocalClosed, EncodeLocalLine(id, ""));
  }

  // One round: poll, then serve what is ready. False when the server went away or another
  // attach took over.
  bool Step() {
    {
      std::lock_guard lock(g_mu);
      if (g_generation != generation_) return false;
    }
    std::vector<pollfd> fds{{attached() ? fd_ : g_wake, POLLIN, 0}, {g_listen, POLLIN, 0}};
    std::vector<uint32_t> ids;
    for (auto& [id, local] : g_locals) {
      if (!attached() && !local.hello.empty()) continue;  // waits for a server
      fds.push_back(
          {local.fd.get(), static_cast<short>(POLLIN | (local.out.empty() ? 0 : POLLOUT)), 0});
      ids.push_back(id);
    }
    int n;
    if (attached())
      // A frame the parser holds already needs no poll.
      n = parser_->buffered() > 0 ? 0 : poll(fds.data(), fds.size(), kPollMs);
    else
      n = poll(fds.data(), fds.size(), -1);  // an attach wakes it through g_wake
    if (n < 0 && errno != EINTR) return false;
    if (!attached()) {
      if (fds[0].revents & POLLIN) {
        uint64_t count;
        (void)!read(g_wake, &count, sizeof count);
      }
    } else if (parser_->buffered() > 0 || (fds[0].revents & (POLLIN | POLLHUP | POLLERR))) {
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

  // Reads what the process wrote and takes each whole line. False when the server is gone.
  bool ReadLocal(uint32_t id) {
    Local& l = g_locals[id];
    char buf[16384];
    ssize_t n = recv(l.fd.get(), buf, sizeof buf, 0);
    if (n < 0 && (errno == EAGAIN || errno == EINTR)) return true;
    if (n <= 0) {
      // What was held behind a hello goes to the next server as the connection's lines would
      // have; a connection that ends before then loses them, as its unread bytes would be.
      Drop(id, true);
      return true;
    }
    l.in.append(buf, static_cast<size_t>(n));
    if (!PassLines(id)) return false;
    if (l.in.size() > kMaxLocalLine) Drop(id, true);
    return true;
  }

  // Takes the whole lines of `in`: before a hello, activity lines are kept and the first other
  // line is the connection's hello; after it, lines go to the server — or, detached, stay in
  // `in` until one attaches. False when the server is gone.
  bool PassLines(uint32_t id) {
    Local& l = g_locals[id];
    size_t start = 0;
    for (size_t nl; (nl = l.in.find('\n', start)) != std::string::npos; start = nl + 1) {
      std::string_view line(l.in.data() + start, nl - start);
      if (line.empty()) continue;
      if (l.hello.empty()) {
        if (IsActivityLine(line)) {
          KeepActivity(line);
          continue;
        }
        l.hello = line;
        if (!attached()) {
          start = nl + 1;
          break;  // the rest waits for a server
        }
      }
      if (!attached()) break;
      if (!Send(MessageType::kLocalLine, EncodeLocalLine(id, line))) return false;
    }
    l.in.erase(0, start);
    return true;
  }

  int fd_;
  FrameParser* parser_;
  uint32_t stream_;
  uint64_t generation_;
};

// The endpoint's loop: serves the socket whenever no server is attached.
void ServeEndpoint() {
  for (;;) {
    uint64_t generation;
    {
      std::unique_lock lock(g_mu);
      g_cv.wait(lock, [] { return !g_active && g_attaching == 0; });
      g_active = true;
      generation = g_generation;
    }
    Bridge(-1, nullptr, 0, generation).Run();
    {
      std::lock_guard lock(g_mu);
      g_active = false;
    }
    g_cv.notify_all();
  }
}

}  // namespace

bool StartMessageEndpoint() {
  std::lock_guard lock(g_mu);
  if (!Listen()) return false;
  g_wake = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
  if (g_wake < 0) return false;
  try {
    std::thread(ServeEndpoint).detach();
  } catch (const std::system_error&) {
    return false;
  }
  return true;
}

ActivityBatch ReadActivity(const std::string& instance, uint64_t after) {
  std::lock_guard lock(g_activity_mu);
  ActivityBatch batch;
  batch.instance = Instance();
  batch.dropped = g_activity_dropped;
  if (instance != batch.instance) after = 0;
  // The reader has everything up to `after`: those are forgotten.
  while (!g_activity.empty() && g_activity.front().seq <= after) {
    g_activity_bytes -= g_activity.front().line.size();
    g_activity.pop_front();
  }
  size_t bytes = 0;
  for (const ActivityLine& l : g_activity) {
    if (l.seq <= after) continue;
    if (bytes + l.line.size() > kActivityBatchBytes && !batch.lines.empty()) break;
    bytes += l.line.size();
    batch.lines.push_back(l);
  }
  return batch;
}

void ServeMessageBridge(int fd, FrameParser* parser, uint32_t stream_id) {
  uint64_t generation;
  {
    std::unique_lock lock(g_mu);
    generation = ++g_generation;
    ++g_attaching;
    if (g_wake >= 0) {
      uint64_t one = 1;
      (void)!write(g_wake, &one, sizeof one);
    }
    // The loop that holds the locals notices within kPollMs (or at once: g_wake) and leaves.
    g_cv.wait(lock, [] { return !g_active; });
    if (generation != g_generation || !Listen()) {
      bool superseded = generation != g_generation;
      --g_attaching;
      lock.unlock();
      g_cv.notify_all();
      if (superseded) return;  // a later attach came meanwhile
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
    --g_attaching;
  }
  g_cv.notify_all();
}

}  // namespace hutch::agent
