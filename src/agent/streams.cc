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

#include "agent/agent_error.h"
#include "agent/command.h"
#include "agent/files_protocol.h"
#include "agent/files_server.h"
#include "agent/frame_io.h"
#include "agent/message_bridge.h"
#include "agent/requests.h"
#include "agent/stream_protocol.h"
#include "common/unique_fd.h"

namespace hutch::agent {

namespace {

// What the client sent for a stream's input (an exec's stdin, a TCP relay's socket) that is
// not written yet, and the credit to give back for what was.
struct Inbound {
  std::string buf;
  bool close = false;  // the client half-closed: end the input once buf is written
  uint32_t ungranted = 0;
};

struct ExecStream {
  uint32_t id = 0;
  pid_t pid = -1;
  int exit_fd = -1;  // the Reaper's; -1 once the status was taken
  UniqueFd in_fd;
  UniqueFd out_fd;  // stdout pipe, or the PTY master
  UniqueFd err_fd;  // none with a PTY
  bool tty = false;
  bool out_done = false, err_done = false;
  Inbound in;
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
  AttachStream() = default;
  AttachStream(const AttachStream&) = delete;
  AttachStream& operator=(const AttachStream&) = delete;
  ~AttachStream() {
    if (proc && event_fd) proc->Unsubscribe(event_fd.get());
  }

  uint32_t id = 0;
  std::shared_ptr<BackgroundProcess> proc;
  UniqueFd event_fd;  // subscribed to proc while it is valid
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
  UniqueFd fd;
  bool connecting = true;  // until the non-blocking connect completed
  Inbound in;              // in.close: shutdown(SHUT_WR) once in.buf is written
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
  void SendError(uint32_t stream, const Status& status) {
    Send(MessageType::kError, stream, EncodeError(ToErrorMessage(status)));
  }
  bool Flush();  // false when the peer is gone
  bool ReadSocket();
  bool HandleBuffered();  // the frames already in parser_; false: end the connection
  // One frame of the client; false: end the connection.
  bool HandleFrame(const Frame& frame);
  bool HandOver(const Frame& frame);    // a file operation or the message relay
  bool OpenStream(const Frame& frame);  // StreamExec, TcpConnect, ProcessAttach
  bool OnStdin(const Frame& frame);     // an exec's stdin, or a TCP relay's data
  bool OnWindow(const Frame& frame);
  bool OnResize(const Frame& frame);
  bool OnSignal(const Frame& frame);
  ExecStream* FindExec(uint32_t id) {
    auto it = execs_.find(id);
    return it == execs_.end() ? nullptr : it->second.get();
  }
  void StartExec(const Frame& frame);
  void StartAttach(const Frame& frame);
  void PumpExec(ExecStream& s, const pollfd* out_pfd, const pollfd* err_pfd, const pollfd* in_pfd,
                const pollfd* exit_pfd);
  bool ExecDone(ExecStream& s);
  void ReadOutput(ExecStream& s, bool is_stderr);
  bool PumpAttach(AttachStream& a);  // true when finished
  void CloseExec(ExecStream& s);
  void StartTcp(const Frame& frame);
  // Writes in.buf to fd without blocking (send on a socket, write on a pipe or PTY) and gives
  // the credit for what was written back in a Window. False when fd is broken (EPIPE,
  // ECONNRESET): what was left is dropped and its credit given back too.
  bool WriteInbound(uint32_t id, Inbound& in, int fd, bool socket);
  void PumpTcp(TcpStream& t, short revents);
  void EndTcp(TcpStream& t, int err);
  // What one turn of Run polls: the connection's socket first, then each stream's fds.
  struct PollSet {
    std::vector<pollfd> fds;
    // Per exec: indexes of its pollfds (out, err, in, exit), -1 when not polled.
    std::vector<std::pair<ExecStream*, std::array<int, 4>>> execs;
    std::vector<int> attaches;                     // the polled eventfds' indexes
    std::vector<std::pair<TcpStream*, int>> tcps;  // index of its pollfd, -1 when not polled
    int64_t next = kNoDeadline;                    // the earliest deadline to wake up for

    int Add(int fd, short events) {
      fds.push_back({fd, events, 0});
      return static_cast<int>(fds.size()) - 1;
    }
    const pollfd* At(int i) const { return i < 0 ? nullptr : &fds[static_cast<size_t>(i)]; }
    void Consider(int64_t deadline) {
      if (deadline != kNoDeadline && (next == kNoDeadline || deadline < next)) next = deadline;
    }
  };
  void PumpAttaches();  // sends what each attach may, and ends the finished ones
  void BuildPollSet(PollSet& set);
  void AddExec(PollSet& set, ExecStream& s, bool room);
  bool ServeReady(PollSet& set);  // false: the peer is gone, end the connection
  void Sweep();                   // forgets ended streams, sends due SIGKILLs
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
  attaches_.clear();
  for (auto& [pgid, when] : pending_kills_) kill(-pgid, SIGKILL);
  tcps_.clear();
}

void Connection::CloseExec(ExecStream& s) {
  s.foreground.reset();
  s.in_fd.Reset();
  s.out_fd.Reset();
  s.err_fd.Reset();
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

void Connection::StartExec(const Frame& frame) {
  uint32_t id = frame.stream_id;
  Result<StreamExecRequest> request = DecodePayload(DecodeStreamExecRequest, frame.payload);
  if (!request.ok()) return SendError(id, ErrorCode::kMalformed, request.status().message());
  Result<ChildStdio> stdio =
      request->tty ? ChildStdio::Pty(request->rows, request->cols) : ChildStdio::Pipes();
  if (!stdio.ok()) return SendError(id, stdio.status());
  Result<SpawnedCommand> spawned =
      SpawnCommand(request->exec, *ctx_.session_env, ctx_.reaper, &*stdio);
  if (!spawned.ok()) return SendError(id, spawned.status());
  auto s = std::make_unique<ExecStream>();
  s->id = id;
  s->tty = request->tty;
  s->credit = request->window;
  s->in_fd = std::move(stdio->stdin_w);
  s->out_fd = std::move(stdio->stdout_r);
  s->err_fd = std::move(stdio->stderr_r);
  s->err_done = request->tty;
  s->pid = spawned->pid;
  s->exit_fd = spawned->exit_fd;
  s->start_ms = spawned->start_ms;
  if (request->exec.timeout_ms > 0) {
    constexpr int64_t kMaxTimeoutMs = int64_t{365} * 24 * 3600 * 1000;
    s->deadline = s->start_ms + std::min(request->exec.timeout_ms, kMaxTimeoutMs);
  }
  for (const UniqueFd* fd : {&s->in_fd, &s->out_fd, &s->err_fd}) {
    if (*fd) SetNonBlocking(fd->get());
  }
  s->foreground = std::make_unique<ForegroundScope>(s->pid, s->tty ? s->out_fd.get() : -1);
  s->in.buf = std::move(request->exec.stdin_data);
  Send(MessageType::kStarted, id, EncodeU32(static_cast<uint32_t>(s->pid)));
  // The request's stdin counts against the stdin window as if sent in Stdin frames.
  if (!s->in.buf.empty()) s->in.ungranted = 0;
  execs_[id] = std::move(s);
}

void Connection::StartAttach(const Frame& frame) {
  uint32_t id = frame.stream_id;
  Result<ProcessAttachRequest> request = DecodePayload(DecodeProcessAttachRequest, frame.payload);
  if (!request.ok()) return SendError(id, ErrorCode::kMalformed, request.status().message());
  auto proc = ctx_.processes->Find(request->selector);
  if (!proc) return SendError(id, ErrorCode::kNotFound, "no process " + request->selector);
  auto a = std::make_unique<AttachStream>();
  a->id = id;
  a->follow = request->follow;
  a->credit = request->window;
  a->event_fd.Reset(eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK));
  if (!a->event_fd) {
    return SendError(id, ErrorCode::kResourceExhausted, "eventfd: " + ErrnoName(errno));
  }
  a->proc = proc;
  proc->Subscribe(a->event_fd.get());
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
  Result<TcpConnectRequest> request = DecodePayload(DecodeTcpConnectRequest, frame.payload);
  if (!request.ok()) return SendError(id, ErrorCode::kMalformed, request.status().message());
  auto t = std::make_unique<TcpStream>();
  t->id = id;
  t->port = request->port;
  t->credit = request->window;
  t->fd.Reset(socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0));
  if (!t->fd) return SendError(id, ErrorCode::kResourceExhausted, "socket: " + ErrnoName(errno));
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(request->port);
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  // Non-blocking: a connect to loopback completes (or is refused) at once in practice, but the
  // loop must never wait on one stream.
  if (connect(t->fd.get(), reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0) {
    t->connecting = false;
    Send(MessageType::kStarted, id, EncodeU32(0));
  } else if (errno != EINPROGRESS) {
    return SendError(
        id, ErrorCode::kUnavailable,
        "connect 127.0.0.1:" + std::to_string(request->port) + ": " + ErrnoName(errno));
  }
  // Keystrokes and small requests: no Nagle delay behind the previous segment's ACK.
  int one = 1;
  setsockopt(t->fd.get(), IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
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
  t.fd.Reset();
}

bool Connection::WriteInbound(uint32_t id, Inbound& in, int fd, bool socket) {
  bool broken = false;
  while (!in.buf.empty()) {
    ssize_t n = socket ? send(fd, in.buf.data(), in.buf.size(), MSG_DONTWAIT | MSG_NOSIGNAL)
                       : write(fd, in.buf.data(), in.buf.size());
    if (n > 0) {
      in.buf.erase(0, static_cast<size_t>(n));
      in.ungranted += static_cast<uint32_t>(n);
      continue;
    }
    if (n < 0 && errno == EINTR) continue;
    if (n < 0 && errno == EAGAIN) break;
    // Broken: give all credit back.
    in.ungranted += static_cast<uint32_t>(in.buf.size());
    in.buf.clear();
    broken = true;
    break;
  }
  if (in.ungranted > 0 && (in.buf.empty() || in.ungranted >= kStdinWindow / 4)) {
    Send(MessageType::kWindow, id, EncodeU32(in.ungranted));
    in.ungranted = 0;
  }
  return !broken;
}

void Connection::PumpTcp(TcpStream& t, short revents) {
  if (t.ended) return;
  if (t.connecting) {
    if (!revents) return;
    int err = 0;
    socklen_t len = sizeof err;
    if (getsockopt(t.fd.get(), SOL_SOCKET, SO_ERROR, &err, &len) != 0) err = errno;
    if (err == EINPROGRESS) return;
    if (err != 0) {
      EndTcp(t, err);
      return;
    }
    t.connecting = false;
    Send(MessageType::kStarted, t.id, EncodeU32(0));
  }
  // Client → socket.
  if (!WriteInbound(t.id, t.in, t.fd.get(), /*socket=*/true)) {
    // EPIPE, ECONNRESET: the peer is gone. What it sent before is still read below.
    t.in.close = false;
    shutdown(t.fd.get(), SHUT_WR);
  }
  if (t.in.close && t.in.buf.empty()) {
    shutdown(t.fd.get(), SHUT_WR);
    t.in.close = false;
  }
  // Socket → client, under the output credit.
  char buf[kMaxDataChunk];
  for (int i = 0; i < 4 && t.credit > 0 && Backlog() < kMaxConnectionBacklog; ++i) {
    size_t want = std::min<size_t>(static_cast<size_t>(t.credit), sizeof buf);
    ssize_t n = recv(t.fd.get(), buf, want, MSG_DONTWAIT);
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

// A file operation or the message relay takes the connection for itself (files_protocol.h,
// message_bridge.h): it blocks this thread until it is done, then the connection ends.
bool Connection::HandOver(const Frame& frame) {
  const bool files = IsFileRequest(static_cast<uint8_t>(frame.type));
  if (!execs_.empty() || !attaches_.empty() || !tcps_.empty()) {
    SendError(frame.stream_id, ErrorCode::kInvalidArgument,
              files ? "a file operation needs a connection of its own"
                    : "the message relay needs a connection of its own");
    return true;
  }
  if (!files) {
    ServeMessageBridge(fd_, parser_, frame.stream_id);
    return false;
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

bool Connection::OpenStream(const Frame& frame) {
  if (StreamInUse(frame.stream_id)) {
    SendError(frame.stream_id, ErrorCode::kInvalidArgument, "stream id in use");
    return true;
  }
  if (frame.type == MessageType::kStreamExec) StartExec(frame);
  if (frame.type == MessageType::kTcpConnect) StartTcp(frame);
  if (frame.type == MessageType::kProcessAttach) StartAttach(frame);
  return true;
}

bool Connection::OnStdin(const Frame& frame) {
  const uint32_t id = frame.stream_id;
  Inbound* in = nullptr;
  const char* what = "stdin";
  if (auto t = tcps_.find(id); t != tcps_.end()) {
    in = &t->second->in;
    what = "data";
  } else if (auto e = execs_.find(id); e != execs_.end()) {
    ExecStream& s = *e->second;
    in = &s.in;
    if (!frame.payload.empty() && !s.in_fd) {
      // stdin is closed (the command closed it): drop the bytes, give the credit back.
      Send(MessageType::kWindow, id, EncodeU32(static_cast<uint32_t>(frame.payload.size())));
      return true;
    }
  } else {
    return true;  // the stream ended meanwhile
  }
  if (frame.payload.empty()) {
    in->close = true;
    return true;
  }
  if (in->buf.size() + frame.payload.size() > kStdinWindow + kMaxDataChunk) {
    SendError(0, ErrorCode::kMalformed,
              std::string(what) + " beyond the granted window on stream " + std::to_string(id));
    return false;
  }
  in->buf.append(frame.payload);
  return true;
}

bool Connection::OnWindow(const Frame& frame) {
  Result<uint32_t> grant = DecodePayload(DecodeU32, frame.payload);
  if (!grant.ok()) {
    SendError(0, ErrorCode::kMalformed, grant.status().message());
    return false;
  }
  const uint32_t id = frame.stream_id;
  int64_t* credit = nullptr;
  if (auto e = execs_.find(id); e != execs_.end()) credit = &e->second->credit;
  if (auto a = attaches_.find(id); a != attaches_.end()) credit = &a->second->credit;
  if (auto t = tcps_.find(id); t != tcps_.end()) credit = &t->second->credit;
  if (credit) *credit = std::min<int64_t>(*credit + *grant, int64_t{4} * kMaxWindow);
  return true;
}

bool Connection::OnResize(const Frame& frame) {
  uint16_t rows = 0, cols = 0;
  std::string error;
  if (!DecodeResize(frame.payload, &rows, &cols, &error)) {
    SendError(0, ErrorCode::kMalformed, error);
    return false;
  }
  ExecStream* s = FindExec(frame.stream_id);
  if (s && s->tty && s->out_fd) {
    winsize ws{};
    ws.ws_row = rows;
    ws.ws_col = cols;
    // The kernel sends SIGWINCH to the terminal's foreground process group.
    ioctl(s->out_fd.get(), TIOCSWINSZ, &ws);
  }
  return true;
}

bool Connection::OnSignal(const Frame& frame) {
  Result<int32_t> sig = DecodePayload(DecodeI32, frame.payload);
  if (!sig.ok() || *sig < 1 || *sig > 64) {
    SendError(0, ErrorCode::kMalformed, sig.ok() ? "signal must be 1..64" : sig.status().message());
    return false;
  }
  ExecStream* s = FindExec(frame.stream_id);
  if (s && !s->exited) SignalGroup(s->pid, *sig);
  return true;
}

bool Connection::HandleFrame(const Frame& frame) {
  if (frame.stream_id == 0) {
    SendError(0, ErrorCode::kMalformed,
              "unexpected " + MessageTypeName(frame.type) + " on stream 0");
    return false;
  }
  if (IsFileRequest(static_cast<uint8_t>(frame.type)) ||
      frame.type == MessageType::kMessageAttach) {
    return HandOver(frame);
  }
  if (AnswerRequest(frame, ctx_, &out_)) return true;
  const MessageType type = frame.type;
  if (type == MessageType::kStreamExec || type == MessageType::kTcpConnect ||
      type == MessageType::kProcessAttach) {
    return OpenStream(frame);
  }
  if (type == MessageType::kStdin) return OnStdin(frame);
  if (type == MessageType::kWindow) return OnWindow(frame);
  if (type == MessageType::kResize) return OnResize(frame);
  if (type == MessageType::kSignal) return OnSignal(frame);
  SendError(frame.stream_id, ErrorCode::kUnsupported,
            "hutch-agent does not support " + MessageTypeName(type));
  return true;
}

void Connection::ReadOutput(ExecStream& s, bool is_stderr) {
  bool& done = is_stderr ? s.err_done : s.out_done;
  int fd = is_stderr ? s.err_fd.get() : s.out_fd.get();
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
  if (in_pfd && in_pfd->revents && s.in_fd) {
    // EPIPE: the command closed its stdin; later bytes are dropped.
    if (!WriteInbound(s.id, s.in, s.in_fd.get(), /*socket=*/false)) s.in_fd.Reset();
  }
  if (s.in.close && s.in.buf.empty() && s.in_fd) {
    if (s.tty) {
      // A terminal has no half-close: end of input is the EOF character at a line start.
      termios t;
      char eof = tcgetattr(s.in_fd.get(), &t) == 0 ? static_cast<char>(t.c_cc[VEOF]) : '\x04';
      (void)!write(s.in_fd.get(), &eof, 1);
      s.in.close = false;
    } else {
      s.in_fd.Reset();
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

void Connection::PumpAttaches() {
  for (auto it = attaches_.begin(); it != attaches_.end();) {
    if (PumpAttach(*it->second)) {
      it = attaches_.erase(it);  // unsubscribes and closes its eventfd
    } else {
      ++it;
    }
  }
}

void Connection::BuildPollSet(PollSet& set) {
  set.fds.clear();
  set.execs.clear();
  set.attaches.clear();
  set.tcps.clear();
  set.next = kNoDeadline;
  set.fds.push_back(
      {fd_, static_cast<short>((peer_closed_ ? 0 : POLLIN) | (Backlog() > 0 ? POLLOUT : 0)), 0});
  const bool room = Backlog() < kMaxConnectionBacklog;
  for (auto& [id, sp] : execs_) AddExec(set, *sp, room);
  for (auto& [id, a] : attaches_) {
    if (a->credit > 0 && room) set.attaches.push_back(set.Add(a->event_fd.get(), POLLIN));
  }
  for (auto& [id, tp] : tcps_) {
    TcpStream& t = *tp;
    short events = 0;
    if (t.connecting) {
      events = POLLOUT;
    } else {
      if (t.credit > 0 && room) events |= POLLIN;
      if (!t.in.buf.empty()) events |= POLLOUT;
      if (t.in.close && t.in.buf.empty()) set.Consider(0);
    }
    set.tcps.emplace_back(&t, events ? set.Add(t.fd.get(), events) : -1);
  }
  for (auto& [pgid, when] : pending_kills_) set.Consider(when);
}

void Connection::AddExec(PollSet& set, ExecStream& s, bool room) {
  std::array<int, 4> ix = {-1, -1, -1, -1};
  bool can_read = s.credit > 0 && room;
  if (can_read && !s.out_done && s.out_fd) ix[0] = set.Add(s.out_fd.get(), POLLIN);
  if (can_read && !s.err_done && s.err_fd) ix[1] = set.Add(s.err_fd.get(), POLLIN);
  if (s.in_fd && !s.in.buf.empty()) ix[2] = set.Add(s.in_fd.get(), POLLOUT);
  if (!s.exited) ix[3] = set.Add(s.exit_fd, POLLIN);
  set.Consider(s.deadline);
  set.Consider(s.kill_at);
  // Exited with output left to take: come back at once when there is credit.
  if (s.exited && can_read) set.Consider(0);
  // A close of stdin waiting for nothing: act now.
  if (s.in.close && s.in.buf.empty() && s.in_fd) set.Consider(0);
  set.execs.emplace_back(&s, ix);
}

bool Connection::ServeReady(PollSet& set) {
  for (int i : set.attaches) {
    if (set.fds[static_cast<size_t>(i)].revents) {
      uint64_t v;
      (void)!read(set.fds[static_cast<size_t>(i)].fd, &v, sizeof v);
    }
  }
  if (set.fds[0].revents & (POLLIN | POLLHUP | POLLERR)) {
    if (!ReadSocket()) {
      // The peer closed (or broke the protocol): send what is queued, then end.
      peer_closed_ = true;
      Flush();
      return false;
    }
  }
  for (auto& [exec, ix] : set.execs) {
    PumpExec(*exec, set.At(ix[0]), set.At(ix[1]), set.At(ix[2]), set.At(ix[3]));
  }
  for (auto& [t, i] : set.tcps) {
    short revents = i < 0 ? 0 : set.fds[static_cast<size_t>(i)].revents;
    if (revents || (t->in.close && t->in.buf.empty())) PumpTcp(*t, revents);
  }
  return true;
}

void Connection::Sweep() {
  std::erase_if(tcps_, [](const auto& entry) { return entry.second->ended; });
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

void Connection::Run() {
  // A client may send its first request right behind its Hello: it is in the parser already.
  if (!HandleBuffered()) {
    Flush();
    return;
  }
  PollSet set;
  for (;;) {
    if (!Flush()) return;
    if (peer_closed_ && Backlog() == 0) return;
    // Attaches first: they have no fd that says when credit arrived.
    PumpAttaches();
    BuildPollSet(set);
    int timeout = -1;
    if (set.next != kNoDeadline) {
      int64_t left = set.next - MonotonicMs();
      timeout = left < 0 ? 0 : static_cast<int>(left > 1 << 30 ? 1 << 30 : left);
    }
    int ready = poll(set.fds.data(), set.fds.size(), timeout);
    if (ready < 0 && errno != EINTR) return;
    if (ready < 0) continue;
    if (!ServeReady(set)) return;
    Sweep();
  }
}

}  // namespace

void ServeStreams(int fd, FrameParser* parser, const StreamContext& ctx) {
  Connection connection(fd, parser, ctx);
  connection.Run();
}

}  // namespace hutch::agent
