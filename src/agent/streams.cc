#include "agent/streams.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <signal.h>
#include <stdlib.h>
#include <sys/eventfd.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <termios.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <cerrno>
#include <cstring>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "agent/command.h"
#include "agent/files_protocol.h"
#include "agent/files_server.h"
#include "agent/frame_io.h"
#include "agent/message_bridge.h"
#include "agent/stream_protocol.h"

namespace hutch::agent {

namespace {

// A /proc file's text (up to 4 MiB: a /proc/net/tcp of tens of thousands of sockets); false
// when it cannot be opened.
bool ReadSmallFile(const char* path, std::string* out) {
  int fd = open(path, O_RDONLY | O_CLOEXEC);
  if (fd < 0) return false;
  char buf[16384];
  for (;;) {
    ssize_t n = read(fd, buf, sizeof buf);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0 || out->size() > (4u << 20)) break;
    out->append(buf, static_cast<size_t>(n));
  }
  close(fd);
  return true;
}

// At most request.max_bytes of the session log from request.offset, and its size now. The
// buffer lives for this call only (the agent's memory budget).
bool ReadLog(int log_fd, const LogReadRequest& request, LogChunk* out, std::string* error) {
  if (log_fd < 0) {
    *error = "this sandbox's agent was given no log to read";
    return false;
  }
  struct stat st;
  if (fstat(log_fd, &st) != 0) {
    *error = std::string("fstat the log: ") + strerror(errno);
    return false;
  }
  out->size = static_cast<uint64_t>(st.st_size);
  if (request.offset >= out->size) return true;
  out->data.resize(
      static_cast<size_t>(std::min<uint64_t>(request.max_bytes, out->size - request.offset)));
  ssize_t n;
  do {
    n = pread(log_fd, out->data.data(), out->data.size(), static_cast<off_t>(request.offset));
  } while (n < 0 && errno == EINTR);
  if (n < 0) {
    *error = std::string("read the log: ") + strerror(errno);
    return false;
  }
  out->data.resize(static_cast<size_t>(n));
  return true;
}

struct ExecStream {
  uint32_t id = 0;
  pid_t pid = -1;
  int exit_fd = -1;  // the Reaper's; -1 once the status was taken
  int in_fd = -1;
  int out_fd = -1;  // stdout pipe, or the PTY master
  int err_fd = -1;  // -1 with a PTY
  bool tty = false;
  bool out_done = false, err_done = false;
  std::string in_buf;
  bool in_close = false;
  uint32_t in_ungranted = 0;
  int64_t credit = 0;
  bool exited = false;
  int status = 0;
  int64_t start_ms = 0;
  int64_t deadline = kNoDeadline;
  int64_t kill_at = kNoDeadline;
  bool timed_out = false;
  std::unique_ptr<ForegroundScope> foreground;
};

struct AttachStream {
  uint32_t id = 0;
  std::shared_ptr<BackgroundProcess> proc;
  int event_fd = -1;
  uint64_t pos = 0;
  bool follow = false;
  uint64_t stop_at = 0;  // without follow: the end of the output when the attach began
  int64_t credit = 0;
  uint64_t dropped = 0;
};

// A relayed TCP connection to 127.0.0.1:port (TcpConnect).
struct TcpStream {
  uint32_t id = 0;
  uint16_t port = 0;
  int fd = -1;
  bool connecting = true;  // until the non-blocking connect completed
  std::string in_buf;      // from the client, not yet written to the socket
  bool in_close = false;   // the client half-closed: shutdown(SHUT_WR) once in_buf is written
  uint32_t in_ungranted = 0;
  int64_t credit = 0;
  bool ended = false;  // EOF or an error: Exit is sent, the stream is removed
};

void SetNonBlocking(int fd) { fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK); }

class Connection {
 public:
  Connection(int fd, FrameParser* parser, const StreamContext& ctx)
      : fd_(fd), parser_(parser), ctx_(ctx) {}
  ~Connection();
  void Run();

 private:
  size_t Backlog() const { return out_.size() - out_sent_; }
  void Send(MessageType type, uint32_t stream, std::string_view payload) {
    AppendFrame(&out_, type, stream, payload);
  }
  void SendError(uint32_t stream, ErrorCode code, const std::string& message) {
    Send(MessageType::kError, stream, EncodeError(ErrorMessage{code, message}));
  }
  bool Flush();  // false when the peer is gone
  bool ReadSocket();
  bool HandleBuffered();  // the frames already in parser_; false: end the connection
  bool HandleFrame(const Frame& frame);
  void RunToCompletion(const Frame& frame);
  void StartExec(const Frame& frame);
  void StartAttach(const Frame& frame);
  void PumpExec(ExecStream& s, const pollfd* out_pfd, const pollfd* err_pfd, const pollfd* in_pfd,
                const pollfd* exit_pfd);
  bool ExecDone(ExecStream& s);
  void ReadOutput(ExecStream& s, bool is_stderr);
  bool PumpAttach(AttachStream& a);  // true when finished
  void CloseExec(ExecStream& s);
  void StartTcp(const Frame& frame);
  void PumpTcp(TcpStream& t, short revents);
  void EndTcp(TcpStream& t, int err);
  bool StreamInUse(uint32_t id) const {
    return execs_.count(id) || attaches_.count(id) || tcps_.count(id);
  }

  int fd_;
  FrameParser* parser_;
  StreamContext ctx_;
  std::string out_;
  size_t out_sent_ = 0;
  bool peer_closed_ = false;
  std::map<uint32_t, std::unique_ptr<ExecStream>> execs_;
  std::map<uint32_t, std::unique_ptr<AttachStream>> attaches_;
  std::map<uint32_t, std::unique_ptr<TcpStream>> tcps_;
  // Timed-out groups whose main process ended: what is left gets SIGKILL at the time given.
  std::vector<std::pair<pid_t, int64_t>> pending_kills_;
};

Connection::~Connection() {
  // The client is gone: nobody reads these commands' output any more. Kill them all first,
  // with every job a terminal's shell started in its session, then reap, so that the waits
  // overlap.
  for (auto& [id, s] : execs_) {
    if (s->exited) continue;
    SignalGroup(s->pid, SIGKILL);
    KillSession(s->pid);
  }
  for (auto& [id, s] : execs_) {
    int64_t until = MonotonicMs() + 5000;
    while (!s->exited && MonotonicMs() < until) {
      pollfd p{s->exit_fd, POLLIN, 0};
      poll(&p, 1, 100);
      int status = ctx_.reaper->TakeStatus(s->pid);
      if (status != -1) {
        s->exited = true;
        s->exit_fd = -1;
      }
    }
    CloseExec(*s);
  }
  for (auto& [id, a] : attaches_) {
    a->proc->Unsubscribe(a->event_fd);
    close(a->event_fd);
  }
  for (auto& [pgid, when] : pending_kills_) kill(-pgid, SIGKILL);
  for (auto& [id, t] : tcps_) {
    if (t->fd >= 0) close(t->fd);
  }
}

void Connection::CloseExec(ExecStream& s) {
  s.foreground.reset();
  for (int* fd : {&s.in_fd, &s.out_fd, &s.err_fd}) {
    if (*fd >= 0) close(*fd);
    *fd = -1;
  }
}

bool Connection::Flush() {
  while (Backlog() > 0) {
    ssize_t n = send(fd_, out_.data() + out_sent_, Backlog(), MSG_DONTWAIT | MSG_NOSIGNAL);
    if (n > 0) {
      out_sent_ += static_cast<size_t>(n);
      continue;
    }
    if (n < 0 && errno == EINTR) continue;
    if (n < 0 && errno == EAGAIN) break;
    return false;
  }
  if (out_sent_ == out_.size()) {
    out_.clear();
    out_sent_ = 0;
  } else if (out_sent_ > 65536 && out_sent_ * 2 > out_.size()) {
    out_.erase(0, out_sent_);
    out_sent_ = 0;
  }
  return true;
}

bool Connection::ReadSocket() {
  char buf[65536];
  ssize_t n = recv(fd_, buf, sizeof buf, MSG_DONTWAIT);
  if (n == 0) return false;
  if (n < 0) return errno == EAGAIN || errno == EINTR;
  parser_->Append(std::string_view(buf, static_cast<size_t>(n)));
  return HandleBuffered();
}

bool Connection::HandleBuffered() {
  for (;;) {
    Frame frame;
    std::string error;
    FrameParser::Result r = parser_->Next(&frame, &error);
    if (r == FrameParser::Result::kNeedMore) return true;
    if (r == FrameParser::Result::kError) {
      SendError(0, ErrorCode::kMalformed, error);
      return false;
    }
    if (!HandleFrame(frame)) return false;
  }
}

void Connection::RunToCompletion(const Frame& frame) {
  core::ExecRequest request;
  std::string error;
  if (!DecodeExecRequest(frame.payload, &request, &error)) {
    SendError(frame.stream_id, ErrorCode::kMalformed, error);
    return;
  }
  // Blocks this connection's other streams while it runs; the host opens a connection per
  // run-to-completion exec.
  CommandOutcome outcome = RunCommand(request, *ctx_.session_env, ctx_.reaper);
  if (outcome.ok) {
    Send(MessageType::kExecResult, frame.stream_id, EncodeExecResult(outcome.result));
  } else {
    SendError(frame.stream_id, outcome.error.code, outcome.error.message);
  }
}

void Connection::StartExec(const Frame& frame) {
  uint32_t id = frame.stream_id;
  StreamExecRequest request;
  std::string error;
  if (!DecodeStreamExecRequest(frame.payload, &request, &error)) {
    SendError(id, ErrorCode::kMalformed, error);
    return;
  }
  auto s = std::make_unique<ExecStream>();
  s->id = id;
  s->tty = request.tty;
  s->credit = request.window;
  ChildFds child;
  int close_after[3] = {-1, -1, -1};
  if (request.tty) {
    // A PTY of the sandbox's own devpts instance (/dev/ptmx → pts/ptmx). The slave becomes the
    // child's controlling terminal (ChildFds::controlling_tty); the agent keeps the master.
    int master = posix_openpt(O_RDWR | O_NOCTTY | O_CLOEXEC);
    char name[64];
    if (master < 0 || grantpt(master) != 0 || unlockpt(master) != 0 ||
        ptsname_r(master, name, sizeof name) != 0) {
      int err = errno;
      if (master >= 0) close(master);
      SendError(id, ErrorCode::kInternal, "open a PTY: " + ErrnoName(err));
      return;
    }
    winsize ws{};
    ws.ws_row = request.rows;
    ws.ws_col = request.cols;
    ioctl(master, TIOCSWINSZ, &ws);
    int slave = open(name, O_RDWR | O_NOCTTY | O_CLOEXEC);
    if (slave < 0) {
      int err = errno;
      close(master);
      SendError(id, ErrorCode::kInternal, std::string("open ") + name + ": " + ErrnoName(err));
      return;
    }
    s->out_fd = master;
    s->in_fd = fcntl(master, F_DUPFD_CLOEXEC, 3);
    s->err_done = true;
    child = ChildFds{slave, slave, slave, true};
    close_after[0] = slave;
  } else {
    int in[2], out[2], err[2];
    if (pipe2(in, O_CLOEXEC) != 0) {
      SendError(id, ErrorCode::kInternal, "pipe: " + ErrnoName(errno));
      return;
    }
    if (pipe2(out, O_CLOEXEC) != 0) {
      SendError(id, ErrorCode::kInternal, "pipe: " + ErrnoName(errno));
      close(in[0]);
      close(in[1]);
      return;
    }
    if (pipe2(err, O_CLOEXEC) != 0) {
      SendError(id, ErrorCode::kInternal, "pipe: " + ErrnoName(errno));
      for (int fd : {in[0], in[1], out[0], out[1]}) close(fd);
      return;
    }
    s->in_fd = in[1];
    s->out_fd = out[0];
    s->err_fd = err[0];
    child = ChildFds{in[0], out[1], err[1], false};
    close_after[0] = in[0];
    close_after[1] = out[1];
    close_after[2] = err[1];
  }
  SpawnedCommand spawned;
  ErrorMessage spawn_error;
  bool ok =
      SpawnCommand(request.exec, *ctx_.session_env, ctx_.reaper, child, &spawned, &spawn_error);
  for (int fd : close_after) {
    if (fd >= 0) close(fd);
  }
  if (!ok) {
    CloseExec(*s);
    SendError(id, spawn_error.code, spawn_error.message);
    return;
  }
  s->pid = spawned.pid;
  s->exit_fd = spawned.exit_fd;
  s->start_ms = spawned.start_ms;
  if (request.exec.timeout_ms > 0) {
    constexpr int64_t kMaxTimeoutMs = int64_t{365} * 24 * 3600 * 1000;
    s->deadline = s->start_ms + std::min(request.exec.timeout_ms, kMaxTimeoutMs);
  }
  for (int fd : {s->in_fd, s->out_fd, s->err_fd}) {
    if (fd >= 0) SetNonBlocking(fd);
  }
  s->foreground = std::make_unique<ForegroundScope>(s->pid, s->tty ? s->out_fd : -1);
  s->in_buf = std::move(request.exec.stdin_data);
  Send(MessageType::kStarted, id, EncodeU32(static_cast<uint32_t>(s->pid)));
  // The request's stdin counts against the stdin window as if sent in Stdin frames.
  if (!s->in_buf.empty()) s->in_ungranted = 0;
  execs_[id] = std::move(s);
}

void Connection::StartAttach(const Frame& frame) {
  uint32_t id = frame.stream_id;
  ProcessAttachRequest request;
  std::string error;
  if (!DecodeProcessAttachRequest(frame.payload, &request, &error)) {
    SendError(id, ErrorCode::kMalformed, error);
    return;
  }
  auto proc = ctx_.processes->Find(request.selector);
  if (!proc) {
    SendError(id, ErrorCode::kNotFound, "no process " + request.selector);
    return;
  }
  auto a = std::make_unique<AttachStream>();
  a->id = id;
  a->proc = proc;
  a->follow = request.follow;
  a->credit = request.window;
  a->event_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
  if (a->event_fd < 0) {
    SendError(id, ErrorCode::kResourceExhausted, "eventfd: " + ErrnoName(errno));
    return;
  }
  proc->Subscribe(a->event_fd);
  // Started first, as for StreamExec: the client knows the process exists before any output.
  Send(MessageType::kStarted, id, EncodeU32(static_cast<uint32_t>(proc->Info().pid)));
  std::vector<OutputChunk> none;
  uint64_t ignored = 0;
  uint64_t at = 0;
  a->stop_at = proc->Read(&at, 0, &none, &ignored);
  attaches_[id] = std::move(a);
}

void Connection::StartTcp(const Frame& frame) {
  uint32_t id = frame.stream_id;
  TcpConnectRequest request;
  std::string error;
  if (!DecodeTcpConnectRequest(frame.payload, &request, &error)) {
    SendError(id, ErrorCode::kMalformed, error);
    return;
  }
  auto t = std::make_unique<TcpStream>();
  t->id = id;
  t->port = request.port;
  t->credit = request.window;
  t->fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (t->fd < 0) {
    SendError(id, ErrorCode::kResourceExhausted, "socket: " + ErrnoName(errno));
    return;
  }
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(request.port);
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  // Non-blocking: a connect to loopback completes (or is refused) at once in practice, but the
  // loop must never wait on one stream.
  if (connect(t->fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0) {
    t->connecting = false;
    Send(MessageType::kStarted, id, EncodeU32(0));
  } else if (errno != EINPROGRESS) {
    int err = errno;
    close(t->fd);
    SendError(id, ErrorCode::kUnavailable,
              "connect 127.0.0.1:" + std::to_string(request.port) + ": " + ErrnoName(err));
    return;
  }
  // Keystrokes and small requests: no Nagle delay behind the previous segment's ACK.
  int one = 1;
  setsockopt(t->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  tcps_[id] = std::move(t);
}

// Sends Exit (or, before the connect completed, the Error) and marks the stream for removal.
void Connection::EndTcp(TcpStream& t, int err) {
  if (t.ended) return;
  t.ended = true;
  if (t.connecting) {
    SendError(t.id, ErrorCode::kUnavailable,
              "connect 127.0.0.1:" + std::to_string(t.port) + ": " + ErrnoName(err));
  } else {
    ExitInfo e;
    e.exit_code = err == 0 ? 0 : -1;
    Send(MessageType::kExit, t.id, EncodeExitInfo(e));
  }
  if (t.fd >= 0) close(t.fd);
  t.fd = -1;
}

void Connection::PumpTcp(TcpStream& t, short revents) {
  if (t.ended) return;
  if (t.connecting) {
    if (!revents) return;
    int err = 0;
    socklen_t len = sizeof err;
    if (getsockopt(t.fd, SOL_SOCKET, SO_ERROR, &err, &len) != 0) err = errno;
    if (err == EINPROGRESS) return;
    if (err != 0) {
      EndTcp(t, err);
      return;
    }
    t.connecting = false;
    Send(MessageType::kStarted, t.id, EncodeU32(0));
  }
  // Client → socket.
  while (!t.in_buf.empty()) {
    ssize_t n = send(t.fd, t.in_buf.data(), t.in_buf.size(), MSG_DONTWAIT | MSG_NOSIGNAL);
    if (n > 0) {
      t.in_buf.erase(0, static_cast<size_t>(n));
      t.in_ungranted += static_cast<uint32_t>(n);
      continue;
    }
    if (n < 0 && errno == EINTR) continue;
    if (n < 0 && errno == EAGAIN) break;
    // EPIPE, ECONNRESET: the peer is gone. What it sent before is still read below.
    t.in_ungranted += static_cast<uint32_t>(t.in_buf.size());
    t.in_buf.clear();
    t.in_close = false;
    shutdown(t.fd, SHUT_WR);
    break;
  }
  if (t.in_ungranted > 0 && (t.in_buf.empty() || t.in_ungranted >= kStdinWindow / 4)) {
    Send(MessageType::kWindow, t.id, EncodeU32(t.in_ungranted));
    t.in_ungranted = 0;
  }
  if (t.in_close && t.in_buf.empty()) {
    shutdown(t.fd, SHUT_WR);
    t.in_close = false;
  }
  // Socket → client, under the output credit.
  char buf[kMaxDataChunk];
  for (int i = 0; i < 4 && t.credit > 0 && Backlog() < kMaxConnectionBacklog; ++i) {
    size_t want = std::min<size_t>(static_cast<size_t>(t.credit), sizeof buf);
    ssize_t n = recv(t.fd, buf, want, MSG_DONTWAIT);
    if (n > 0) {
      Send(MessageType::kStdout, t.id, std::string_view(buf, static_cast<size_t>(n)));
      t.credit -= n;
      continue;
    }
    if (n < 0 && errno == EINTR) continue;
    if (n < 0 && errno == EAGAIN) return;
    EndTcp(t, n == 0 ? 0 : errno);
    return;
  }
}

bool Connection::HandleFrame(const Frame& frame) {
  uint32_t id = frame.stream_id;
  std::string error;
  if (id == 0) {
    SendError(0, ErrorCode::kMalformed,
              "unexpected " + MessageTypeName(frame.type) + " on stream 0");
    return false;
  }
  auto exec = execs_.find(id);
  ExecStream* s = exec == execs_.end() ? nullptr : exec->second.get();
  auto answer = [&](bool ok, const ProcessInfo& info, const ErrorMessage& em) {
    if (ok) {
      Send(MessageType::kProcessList, id, EncodeProcessList({info}));
    } else {
      SendError(id, em.code, em.message);
    }
  };
  if (IsFileRequest(static_cast<uint8_t>(frame.type))) {
    // A file operation takes the connection for itself (files_protocol.h): it blocks this
    // thread until it is done, then the connection ends.
    if (!execs_.empty() || !attaches_.empty() || !tcps_.empty()) {
      SendError(id, ErrorCode::kInvalidArgument, "a file operation needs a connection of its own");
      return true;
    }
    if (Backlog() > 0) {
      std::string ignored;
      WriteAll(fd_, std::string_view(out_).substr(out_sent_), MonotonicMs() + 5000, &ignored);
      out_.clear();
      out_sent_ = 0;
    }
    ServeFileRequest(fd_, parser_, frame);
    return false;
  }
  if (frame.type == MessageType::kMessageAttach) {
    // The message relay takes the connection for itself too (message_bridge.h).
    if (!execs_.empty() || !attaches_.empty() || !tcps_.empty()) {
      SendError(id, ErrorCode::kInvalidArgument, "the message relay needs a connection of its own");
      return true;
    }
    ServeMessageBridge(fd_, parser_, id);
    return false;
  }
  switch (frame.type) {
    case MessageType::kExecRequest:
      RunToCompletion(frame);
      return true;
    case MessageType::kStreamExec:
      if (StreamInUse(id)) {
        SendError(id, ErrorCode::kInvalidArgument, "stream id in use");
        return true;
      }
      StartExec(frame);
      return true;
    case MessageType::kTcpConnect:
      if (StreamInUse(id)) {
        SendError(id, ErrorCode::kInvalidArgument, "stream id in use");
        return true;
      }
      StartTcp(frame);
      return true;
    case MessageType::kProcessAttach:
      if (StreamInUse(id)) {
        SendError(id, ErrorCode::kInvalidArgument, "stream id in use");
        return true;
      }
      StartAttach(frame);
      return true;
    case MessageType::kStdin: {
      if (auto t = tcps_.find(id); t != tcps_.end()) {
        TcpStream& tcp = *t->second;
        if (frame.payload.empty()) {
          tcp.in_close = true;
          return true;
        }
        if (tcp.in_buf.size() + frame.payload.size() > kStdinWindow + kMaxDataChunk) {
          SendError(0, ErrorCode::kMalformed,
                    "data beyond the granted window on stream " + std::to_string(id));
          return false;
        }
        tcp.in_buf.append(frame.payload);
        return true;
      }
      if (!s) return true;  // the stream ended meanwhile
      if (frame.payload.empty()) {
        s->in_close = true;
        return true;
      }
      if (s->in_fd < 0) {
        // stdin is closed (the command closed it): drop the bytes, give the credit back.
        Send(MessageType::kWindow, id, EncodeU32(static_cast<uint32_t>(frame.payload.size())));
        return true;
      }
      if (s->in_buf.size() + frame.payload.size() > kStdinWindow + kMaxDataChunk) {
        SendError(0, ErrorCode::kMalformed,
                  "stdin beyond the granted window on stream " + std::to_string(id));
        return false;
      }
      s->in_buf.append(frame.payload);
      return true;
    }
    case MessageType::kWindow: {
      uint32_t grant = 0;
      if (!DecodeU32(frame.payload, &grant, &error)) {
        SendError(0, ErrorCode::kMalformed, error);
        return false;
      }
      int64_t* credit = nullptr;
      if (s) credit = &s->credit;
      if (auto a = attaches_.find(id); a != attaches_.end()) credit = &a->second->credit;
      if (auto t = tcps_.find(id); t != tcps_.end()) credit = &t->second->credit;
      if (credit) *credit = std::min<int64_t>(*credit + grant, int64_t{4} * kMaxWindow);
      return true;
    }
    case MessageType::kResize: {
      uint16_t rows = 0, cols = 0;
      if (!DecodeResize(frame.payload, &rows, &cols, &error)) {
        SendError(0, ErrorCode::kMalformed, error);
        return false;
      }
      if (s && s->tty && s->out_fd >= 0) {
        winsize ws{};
        ws.ws_row = rows;
        ws.ws_col = cols;
        // The kernel sends SIGWINCH to the terminal's foreground process group.
        ioctl(s->out_fd, TIOCSWINSZ, &ws);
      }
      return true;
    }
    case MessageType::kSignal: {
      int32_t sig = 0;
      if (!DecodeI32(frame.payload, &sig, &error) || sig < 1 || sig > 64) {
        SendError(0, ErrorCode::kMalformed, error.empty() ? "signal must be 1..64" : error);
        return false;
      }
      if (s && !s->exited) SignalGroup(s->pid, sig);
      return true;
    }
    case MessageType::kProcessStart: {
      ProcessStartRequest request;
      if (!DecodeProcessStartRequest(frame.payload, &request, &error)) {
        SendError(id, ErrorCode::kMalformed, error);
        return true;
      }
      ProcessInfo info;
      ErrorMessage em;
      answer(ctx_.processes->Start(request, &info, &em), info, em);
      return true;
    }
    case MessageType::kProcessList:
      Send(MessageType::kProcessList, id, EncodeProcessList(ctx_.processes->List()));
      return true;
    case MessageType::kProcessSignal: {
      ProcessSignalRequest request;
      if (!DecodeProcessSignalRequest(frame.payload, &request, &error)) {
        SendError(id, ErrorCode::kMalformed, error);
        return true;
      }
      ProcessInfo info;
      ErrorMessage em;
      answer(ctx_.processes->Signal(request.selector, request.signal, &info, &em), info, em);
      return true;
    }
    case MessageType::kProcessStdin: {
      ProcessStdinRequest request;
      if (!DecodeProcessStdinRequest(frame.payload, &request, &error)) {
        SendError(id, ErrorCode::kMalformed, error);
        return true;
      }
      ProcessInfo info;
      ErrorMessage em;
      answer(ctx_.processes->WriteStdin(request.selector, request.data, request.close, &info, &em),
             info, em);
      return true;
    }
    case MessageType::kServiceStart: {
      ServiceSpec spec;
      if (!DecodeServiceSpec(frame.payload, &spec, &error)) {
        SendError(id, ErrorCode::kMalformed, error);
        return true;
      }
      ServiceInfo info;
      ErrorMessage em;
      if (ctx_.services->Start(spec, &info, &em))
        Send(MessageType::kServiceList, id, EncodeServiceList({info}));
      else
        SendError(id, em.code, em.message);
      return true;
    }
    case MessageType::kServiceList:
      Send(MessageType::kServiceList, id, EncodeServiceList(ctx_.services->List()));
      return true;
    case MessageType::kServiceStop: {
      ServiceInfo info;
      ErrorMessage em;
      std::string name(frame.payload);
      if (ctx_.services->Stop(name, &info, &em))
        Send(MessageType::kServiceList, id, EncodeServiceList({info}));
      else
        SendError(id, em.code, em.message);
      return true;
    }
    case MessageType::kPortList: {
      std::vector<ListeningPort> ports;
      for (bool v6 : {false, true}) {
        std::string text;
        if (ReadSmallFile(v6 ? "/proc/net/tcp6" : "/proc/net/tcp", &text))
          ParseProcNetTcp(text, v6, &ports);
      }
      std::sort(ports.begin(), ports.end(), [](const ListeningPort& a, const ListeningPort& b) {
        return a.port != b.port ? a.port < b.port : a.address < b.address;
      });
      ports.erase(std::unique(ports.begin(), ports.end()), ports.end());
      Send(MessageType::kPortList, id, EncodePortList(ports));
      return true;
    }
    case MessageType::kLogRead: {
      LogReadRequest request;
      if (!DecodeLogReadRequest(frame.payload, &request, &error)) {
        SendError(id, ErrorCode::kMalformed, error);
        return true;
      }
      LogChunk chunk;
      if (!ReadLog(ctx_.log_fd, request, &chunk, &error)) {
        SendError(id, ctx_.log_fd < 0 ? ErrorCode::kUnsupported : ErrorCode::kInternal, error);
        return true;
      }
      Send(MessageType::kLogRead, id, EncodeLogChunk(chunk));
      return true;
    }
    case MessageType::kInterrupt: {
      ProcessInfo info;
      info.pid = InterruptForeground();  // how many jobs were interrupted
      info.running = false;
      Send(MessageType::kProcessList, id, EncodeProcessList({info}));
      return true;
    }
    default:
      SendError(id, ErrorCode::kUnsupported,
                "hutch-agent does not support " + MessageTypeName(frame.type));
      return true;
  }
}

void Connection::ReadOutput(ExecStream& s, bool is_stderr) {
  bool& done = is_stderr ? s.err_done : s.out_done;
  int fd = is_stderr ? s.err_fd : s.out_fd;
  if (done || fd < 0) return;
  char buf[kMaxDataChunk];
  // A few reads per wakeup, so one busy stream cannot starve the others.
  for (int i = 0; i < 4 && s.credit > 0 && Backlog() < kMaxConnectionBacklog; ++i) {
    size_t want = std::min<size_t>(static_cast<size_t>(s.credit), sizeof buf);
    ssize_t n = read(fd, buf, want);
    if (n > 0) {
      Send(is_stderr ? MessageType::kStderr : MessageType::kStdout, s.id,
           std::string_view(buf, static_cast<size_t>(n)));
      s.credit -= n;
      continue;
    }
    if (n < 0 && errno == EINTR) continue;
    if (n < 0 && errno == EAGAIN) {
      // After the main process ended, what is not in the pipe now is not waited for: a
      // background grandchild holding the pipe must not hold the stream.
      if (s.exited) done = true;
      return;
    }
    done = true;  // EOF, or EIO: a PTY whose slave side is closed by all
    return;
  }
}

void Connection::PumpExec(ExecStream& s, const pollfd* out_pfd, const pollfd* err_pfd,
                          const pollfd* in_pfd, const pollfd* exit_pfd) {
  int64_t now = MonotonicMs();
  if (!s.exited && s.deadline != kNoDeadline && now >= s.deadline) {
    SignalGroup(s.pid, SIGTERM);
    s.timed_out = true;
    s.deadline = kNoDeadline;
    s.kill_at = now + kKillGraceMs;
  }
  if (!s.exited && s.kill_at != kNoDeadline && now >= s.kill_at) {
    SignalGroup(s.pid, SIGKILL);
    s.kill_at = kNoDeadline;
  }
  if (exit_pfd && exit_pfd->revents) {
    int status = ctx_.reaper->TakeStatus(s.pid);
    if (status != -1) {
      s.exited = true;
      s.status = status;
      s.exit_fd = -1;
    }
  }
  if (in_pfd && in_pfd->revents && s.in_fd >= 0) {
    while (!s.in_buf.empty()) {
      ssize_t n = write(s.in_fd, s.in_buf.data(), s.in_buf.size());
      if (n > 0) {
        s.in_buf.erase(0, static_cast<size_t>(n));
        s.in_ungranted += static_cast<uint32_t>(n);
        continue;
      }
      if (n < 0 && errno == EINTR) continue;
      if (n < 0 && errno == EAGAIN) break;
      // EPIPE: the command closed its stdin. Give all credit back; later bytes are dropped.
      s.in_ungranted += static_cast<uint32_t>(s.in_buf.size());
      s.in_buf.clear();
      close(s.in_fd);
      s.in_fd = -1;
      break;
    }
    if (s.in_ungranted > 0 && (s.in_buf.empty() || s.in_ungranted >= kStdinWindow / 4)) {
      Send(MessageType::kWindow, s.id, EncodeU32(s.in_ungranted));
      s.in_ungranted = 0;
    }
  }
  if (s.in_close && s.in_buf.empty() && s.in_fd >= 0) {
    if (s.tty) {
      // A terminal has no half-close: end of input is the EOF character at a line start.
      termios t;
      char eof = tcgetattr(s.in_fd, &t) == 0 ? static_cast<char>(t.c_cc[VEOF]) : '\x04';
      (void)!write(s.in_fd, &eof, 1);
      s.in_close = false;
    } else {
      close(s.in_fd);
      s.in_fd = -1;
    }
  }
  if ((out_pfd && out_pfd->revents) || s.exited) ReadOutput(s, false);
  if ((err_pfd && err_pfd->revents) || s.exited) ReadOutput(s, true);
}

bool Connection::ExecDone(ExecStream& s) {
  if (!s.exited || !s.out_done || !s.err_done) return false;
  ExitInfo e;
  e.exited = true;
  e.timed_out = s.timed_out;
  e.duration_ms = MonotonicMs() - s.start_ms;
  if (WIFEXITED(s.status)) {
    e.exit_code = WEXITSTATUS(s.status);
  } else if (WIFSIGNALED(s.status)) {
    e.exit_code = -1;
    e.signal = WTERMSIG(s.status);
  }
  Send(MessageType::kExit, s.id, EncodeExitInfo(e));
  if (s.timed_out) {
    pending_kills_.emplace_back(s.pid, s.kill_at == kNoDeadline ? MonotonicMs() : s.kill_at);
  }
  CloseExec(s);
  return true;
}

bool Connection::PumpAttach(AttachStream& a) {
  while (a.credit > 0 && Backlog() < kMaxConnectionBacklog) {
    ExitInfo exit = a.proc->Exit();  // before Read: output after an exit is all there
    std::vector<OutputChunk> chunks;
    size_t want = std::min<size_t>(static_cast<size_t>(a.credit), kMaxDataChunk);
    uint64_t end = a.proc->Read(&a.pos, want, &chunks, &a.dropped);
    for (const OutputChunk& c : chunks) {
      Send(c.is_stderr ? MessageType::kStderr : MessageType::kStdout, a.id, c.data);
      a.credit -= static_cast<int64_t>(c.data.size());
    }
    bool finished = a.follow ? (exit.exited && a.pos >= end) : a.pos >= a.stop_at;
    if (finished) {
      if (!a.follow) exit = a.proc->Exit();
      exit.dropped_bytes = a.dropped;
      Send(MessageType::kExit, a.id, EncodeExitInfo(exit));
      return true;
    }
    if (chunks.empty()) break;
  }
  return false;
}

void Connection::Run() {
  // A client may send its first request right behind its Hello: it is in the parser already.
  if (!HandleBuffered()) {
    Flush();
    return;
  }
  std::vector<pollfd> fds;
  for (;;) {
    if (!Flush()) return;
    if (peer_closed_ && Backlog() == 0) return;
    // Attaches first: they have no fd that says when credit arrived.
    for (auto it = attaches_.begin(); it != attaches_.end();) {
      if (PumpAttach(*it->second)) {
        it->second->proc->Unsubscribe(it->second->event_fd);
        close(it->second->event_fd);
        it = attaches_.erase(it);
      } else {
        ++it;
      }
    }
    fds.clear();
    fds.push_back(
        {fd_, static_cast<short>((peer_closed_ ? 0 : POLLIN) | (Backlog() > 0 ? POLLOUT : 0)), 0});
    bool room = Backlog() < kMaxConnectionBacklog;
    int64_t next = kNoDeadline;
    auto consider = [&next](int64_t d) {
      if (d != kNoDeadline && (next == kNoDeadline || d < next)) next = d;
    };
    // Per exec: indexes of its pollfds (out, err, in, exit), -1 when not polled.
    std::vector<std::array<int, 4>> idx;
    std::vector<ExecStream*> order;
    for (auto& [id, sp] : execs_) {
      ExecStream& s = *sp;
      std::array<int, 4> ix = {-1, -1, -1, -1};
      bool can_read = s.credit > 0 && room;
      if (can_read && !s.out_done && s.out_fd >= 0) {
        ix[0] = static_cast<int>(fds.size());
        fds.push_back({s.out_fd, POLLIN, 0});
      }
      if (can_read && !s.err_done && s.err_fd >= 0) {
        ix[1] = static_cast<int>(fds.size());
        fds.push_back({s.err_fd, POLLIN, 0});
      }
      if (s.in_fd >= 0 && !s.in_buf.empty()) {
        ix[2] = static_cast<int>(fds.size());
        fds.push_back({s.in_fd, POLLOUT, 0});
      }
      if (!s.exited) {
        ix[3] = static_cast<int>(fds.size());
        fds.push_back({s.exit_fd, POLLIN, 0});
      }
      consider(s.deadline);
      consider(s.kill_at);
      // Exited with output left to take: come back at once when there is credit.
      if (s.exited && can_read) consider(0);
      // A close of stdin waiting for nothing: act now.
      if (s.in_close && s.in_buf.empty() && s.in_fd >= 0) consider(0);
      idx.push_back(ix);
      order.push_back(&s);
    }
    std::vector<int> attach_idx;
    for (auto& [id, a] : attaches_) {
      if (a->credit > 0 && room) {
        attach_idx.push_back(static_cast<int>(fds.size()));
        fds.push_back({a->event_fd, POLLIN, 0});
      }
    }
    // Per TCP relay: index of its pollfd, -1 when not polled.
    std::vector<std::pair<TcpStream*, int>> tcp_idx;
    for (auto& [id, tp] : tcps_) {
      TcpStream& t = *tp;
      short events = 0;
      if (t.connecting) {
        events = POLLOUT;
      } else {
        if (t.credit > 0 && room) events |= POLLIN;
        if (!t.in_buf.empty()) events |= POLLOUT;
        if (t.in_close && t.in_buf.empty()) consider(0);
      }
      int i = -1;
      if (events) {
        i = static_cast<int>(fds.size());
        fds.push_back({t.fd, events, 0});
      }
      tcp_idx.emplace_back(&t, i);
    }
    for (auto& [pgid, when] : pending_kills_) consider(when);
    int timeout = -1;
    if (next != kNoDeadline) {
      int64_t left = next - MonotonicMs();
      timeout = left < 0 ? 0 : static_cast<int>(left > 1 << 30 ? 1 << 30 : left);
    }
    int ready = poll(fds.data(), fds.size(), timeout);
    if (ready < 0 && errno != EINTR) return;
    if (ready < 0) continue;
    for (int i : attach_idx) {
      if (fds[static_cast<size_t>(i)].revents) {
        uint64_t v;
        (void)!read(fds[static_cast<size_t>(i)].fd, &v, sizeof v);
      }
    }
    if (fds[0].revents & (POLLIN | POLLHUP | POLLERR)) {
      if (!ReadSocket()) {
        // The peer closed (or broke the protocol): send what is queued, then end.
        peer_closed_ = true;
        Flush();
        return;
      }
    }
    for (size_t k = 0; k < order.size(); ++k) {
      auto p = [&](int i) { return i < 0 ? nullptr : &fds[static_cast<size_t>(i)]; };
      PumpExec(*order[k], p(idx[k][0]), p(idx[k][1]), p(idx[k][2]), p(idx[k][3]));
    }
    for (auto& [t, i] : tcp_idx) {
      short revents = i < 0 ? 0 : fds[static_cast<size_t>(i)].revents;
      if (revents || (t->in_close && t->in_buf.empty())) PumpTcp(*t, revents);
    }
    for (auto it = tcps_.begin(); it != tcps_.end();) {
      if (it->second->ended) {
        it = tcps_.erase(it);
      } else {
        ++it;
      }
    }
    for (auto it = execs_.begin(); it != execs_.end();) {
      if (ExecDone(*it->second)) {
        it = execs_.erase(it);
      } else {
        ++it;
      }
    }
    int64_t now = MonotonicMs();
    for (auto it = pending_kills_.begin(); it != pending_kills_.end();) {
      if (now >= it->second) {
        kill(-it->first, SIGKILL);
        it = pending_kills_.erase(it);
      } else {
        ++it;
      }
    }
  }
}

}  // namespace

void ServeStreams(int fd, FrameParser* parser, const StreamContext& ctx) {
  Connection connection(fd, parser, ctx);
  connection.Run();
}

}  // namespace hutch::agent
