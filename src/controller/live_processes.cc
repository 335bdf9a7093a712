#include "controller/live_processes.h"

#include <poll.h>

#include <algorithm>

#include <fmt/format.h>

#include "common/ids.h"
#include "controller/session_service.h"

namespace hutch::controller {

namespace {

// How long the reader waits for output before letting a writer's turn come round: input sent
// meanwhile waits at most this long for the stream.
constexpr int kPollMs = 20;
// How long input may wait for a process that takes none of it.
constexpr std::chrono::seconds kStdinPatience{60};
// A replay skips to the first line start within this many bytes of a wrapped scrollback.
constexpr size_t kLineSearch = 4096;

}  // namespace

// --- LiveSubscription ---------------------------------------------------------------------

std::optional<LiveEvent> LiveSubscription::Wait(int64_t timeout_ms) {
  std::unique_lock lock(mu_);
  cv_.wait_for(lock, std::chrono::milliseconds(timeout_ms),
               [&] { return cancelled_ || !events_.empty(); });
  if (cancelled_ || events_.empty()) return std::nullopt;
  LiveEvent e = std::move(events_.front());
  events_.pop_front();
  pending_ -= e.data.size();
  return e;
}

std::vector<LiveEvent> LiveSubscription::TakeAll() {
  std::lock_guard lock(mu_);
  std::vector<LiveEvent> out;
  if (cancelled_) return out;
  out.reserve(events_.size());
  for (auto& e : events_) out.push_back(std::move(e));
  events_.clear();
  pending_ = 0;
  return out;
}

void LiveSubscription::Cancel() {
  {
    std::lock_guard lock(mu_);
    cancelled_ = true;
    events_.clear();
  }
  cv_.notify_all();
  if (notify_) notify_();
}

bool LiveSubscription::cancelled() const {
  std::lock_guard lock(mu_);
  return cancelled_;
}

bool LiveSubscription::overflowed() const {
  std::lock_guard lock(mu_);
  return overflowed_;
}

void LiveSubscription::Push(LiveEvent e) {
  {
    std::lock_guard lock(mu_);
    if (cancelled_) return;
    pending_ += e.data.size();
    if (max_pending_ > 0 && pending_ > max_pending_) {
      // The reader is this far behind: it gets nothing more (it may subscribe again and start
      // from the scrollback) instead of the server holding all the output it missed.
      overflowed_ = true;
      cancelled_ = true;
      events_.clear();
    } else {
      events_.push_back(std::move(e));
    }
  }
  cv_.notify_all();
  if (notify_) notify_();
}

// --- Scrollback ---------------------------------------------------------------------------

void Scrollback::Append(std::string_view data) {
  const size_t cap = buf_.size();
  if (cap == 0) return;
  if (data.size() >= cap) {
    data = data.substr(data.size() - cap);
    std::copy(data.begin(), data.end(), buf_.begin());
    start_ = 0;
    size_ = cap;
    wrapped_ = true;
    return;
  }
  size_t end = (start_ + size_) % cap;
  for (char c : data) {
    buf_[end] = c;
    end = (end + 1) % cap;
  }
  size_ += data.size();
  if (size_ > cap) {
    start_ = (start_ + size_ - cap) % cap;
    size_ = cap;
    wrapped_ = true;
  }
}

std::string Scrollback::Snapshot() const {
  std::string out;
  out.reserve(size_);
  const size_t cap = buf_.size();
  for (size_t i = 0; i < size_; ++i) out.push_back(buf_[(start_ + i) % cap]);
  if (wrapped_) {
    size_t nl = out.find('\n');
    if (nl != std::string::npos && nl < kLineSearch) out.erase(0, nl + 1);
  }
  return out;
}

// --- LiveProcess --------------------------------------------------------------------------

LiveProcess::LiveProcess(SessionService* service, core::StreamExecRequest request,
                         LiveOptions options, OutputStream stream)
    : service_(service),
      session_id_(stream.session().id),
      session_owner_(stream.session().owner),
      request_(std::move(request)),
      options_(std::move(options)),
      created_at_(Now()),
      pid_(stream.pid()),
      stream_(std::move(stream)),
      scrollback_(options_.scrollback_bytes),
      last_activity_(created_at_),
      rows_(request_.rows),
      cols_(request_.cols),
      detached_since_(created_at_) {
  // A terminal keeps the session busy only while someone is attached (Attach): a detached one
  // waits for its owner, it is not a running job.
  if (service_) stream_->DropBusy();
}

LiveProcess::~LiveProcess() {
  stop_ = true;
  if (thread_.joinable()) thread_.join();
}

void LiveProcess::Run() {
  thread_ = std::thread([this] { Pump(); });
}

bool LiveProcess::ended() const {
  std::lock_guard lock(mu_);
  return ended_;
}

TimePoint LiveProcess::last_activity() const {
  std::lock_guard lock(mu_);
  return last_activity_;
}

std::pair<uint16_t, uint16_t> LiveProcess::size() const {
  std::lock_guard lock(mu_);
  return {rows_, cols_};
}

std::shared_ptr<LiveSubscription> LiveProcess::Subscribe(bool replay, size_t max_pending_bytes,
                                                         std::function<void()> notify) {
  std::lock_guard lock(mu_);
  if (ended_) return nullptr;
  auto sub = std::make_shared<LiveSubscription>(max_pending_bytes, std::move(notify));
  // Under mu_, as Publish appends: the replay and the live output neither overlap nor miss a
  // byte between them.
  if (replay && scrollback_.size() > 0) {
    LiveEvent e;
    e.kind = LiveEvent::Kind::kStdout;
    e.data = scrollback_.Snapshot();
    sub->Push(std::move(e));
  }
  subscribers_.push_back(sub);
  return sub;
}

void LiveProcess::Attach() {
  std::lock_guard lock(mu_);
  if (attached_++ == 0 && service_) busy_ = service_->Busy(session_id_);
  detached_since_.reset();
  last_activity_ = Now();
}

void LiveProcess::Detach() {
  std::lock_guard lock(mu_);
  if (attached_ > 0 && --attached_ == 0) {
    busy_.reset();
    detached_since_ = Now();
  }
}

int LiveProcess::attached() const {
  std::lock_guard lock(mu_);
  return attached_;
}

std::optional<TimePoint> LiveProcess::DetachedSince() const {
  std::lock_guard lock(mu_);
  return detached_since_;
}

void LiveProcess::Publish(LiveEvent e) {
  std::lock_guard lock(mu_);
  if (e.kind == LiveEvent::Kind::kEnd) {
    if (ended_) return;
    ended_ = true;
    busy_.reset();
  } else {
    scrollback_.Append(e.data);
    last_activity_ = Now();
  }
  std::vector<std::weak_ptr<LiveSubscription>> alive;
  for (auto& weak : subscribers_) {
    if (auto sub = weak.lock()) {
      sub->Push(e);
      if (!sub->cancelled()) alive.push_back(std::move(weak));
    }
  }
  subscribers_ = std::move(alive);
}

void LiveProcess::Pump() {
  while (!stop_) {
    Result<std::optional<OutputStream::Event>> next = std::optional<OutputStream::Event>();
    {
      std::lock_guard lock(io_mu_);
      next = stream_->Next(0);
    }
    if (!next.ok()) {
      LiveEvent end;
      end.error = next.status().message();
      Publish(std::move(end));
      return;
    }
    if (!next->has_value()) {
      pollfd p{stream_->fd(), POLLIN, 0};
      ::poll(&p, 1, kPollMs);
      continue;
    }
    OutputStream::Event& ev = **next;
    LiveEvent e;
    e.data = std::move(ev.data);
    e.exit = ev.exit;
    switch (ev.kind) {
      case OutputStream::Event::Kind::kStdout:
        e.kind = LiveEvent::Kind::kStdout;
        break;
      case OutputStream::Event::Kind::kStderr:
        e.kind = LiveEvent::Kind::kStderr;
        break;
      case OutputStream::Event::Kind::kExit:
        e.kind = LiveEvent::Kind::kEnd;
        break;
    }
    bool end = e.kind == LiveEvent::Kind::kEnd;
    Publish(std::move(e));
    if (end) return;
  }
}

void LiveProcess::End(const std::string& why) {
  stop_ = true;
  if (thread_.joinable() && thread_.get_id() != std::this_thread::get_id()) thread_.join();
  {
    // Closing the agent stream is what ends the command (the agent kills its process group
    // when the connection that started it goes).
    std::lock_guard lock(io_mu_);
    stream_.reset();
  }
  LiveEvent end;
  end.error = why;
  Publish(std::move(end));
}

// In pieces the agent takes at once, never waiting for its credit with the stream held: the
// reader must keep taking output meanwhile, or a command that echoes its input (cat) would stop
// reading it once its output waits, and the write would wait forever.
Status LiveProcess::WriteInput(std::string_view data) {
  auto deadline = std::chrono::steady_clock::now() + kStdinPatience;
  while (!data.empty()) {
    ASSIGN_OR_RETURN(size_t n, WriteSomeInput(data));
    data.remove_prefix(n);
    if (n > 0) {
      deadline = std::chrono::steady_clock::now() + kStdinPatience;
      continue;
    }
    if (ended()) return NotFound(fmt::format("process {} ended", pid_));
    if (std::chrono::steady_clock::now() > deadline)
      return Unavailable(fmt::format("process {} does not read its stdin", pid_));
    std::this_thread::sleep_for(std::chrono::milliseconds(2));
  }
  return Status::Ok();
}

Result<size_t> LiveProcess::WriteSomeInput(std::string_view data) {
  {
    std::lock_guard lock(mu_);
    last_activity_ = Now();
  }
  std::lock_guard lock(io_mu_);
  if (!stream_) return NotFound(fmt::format("process {} ended", pid_));
  return stream_->WriteSomeStdin(data);
}

Status LiveProcess::CloseStdin() {
  std::lock_guard lock(io_mu_);
  if (!stream_) return NotFound(fmt::format("process {} ended", pid_));
  return stream_->CloseStdin();
}

Status LiveProcess::Signal(int sig) {
  std::lock_guard lock(io_mu_);
  if (!stream_) return NotFound(fmt::format("process {} ended", pid_));
  return stream_->Signal(sig);
}

Status LiveProcess::Resize(uint16_t rows, uint16_t cols) {
  if (!request_.tty) return InvalidArgument(fmt::format("process {} has no terminal", pid_));
  {
    std::lock_guard lock(mu_);
    rows_ = rows;
    cols_ = cols;
  }
  std::lock_guard lock(io_mu_);
  if (!stream_) return NotFound(fmt::format("process {} ended", pid_));
  return stream_->Resize(rows, cols);
}

// --- LiveProcessTable ---------------------------------------------------------------------

LiveProcessTable::~LiveProcessTable() { Clear(); }

void LiveProcessTable::Clear() {
  std::vector<std::shared_ptr<LiveProcess>> all;
  {
    std::lock_guard lock(mu_);
    all.swap(processes_);
  }
  for (auto& p : all) p->End("the server stopped");
}

size_t LiveProcessTable::size() {
  std::lock_guard lock(mu_);
  ReapLocked();
  return processes_.size();
}

void LiveProcessTable::ReapLocked() {
  std::erase_if(processes_, [](const std::shared_ptr<LiveProcess>& p) { return p->ended(); });
}

Result<std::pair<std::shared_ptr<LiveProcess>, std::shared_ptr<LiveSubscription>>>
LiveProcessTable::Start(SandboxAgent& agent, const core::Principal& who,
                        const std::string& session_id, const core::StreamExecRequest& request,
                        LiveOptions options, bool close_stdin, bool subscribe,
                        core::Session* touched) {
  if (options_.max_per_session > 0) {
    std::lock_guard lock(mu_);
    ReapLocked();
    size_t n = std::count_if(processes_.begin(), processes_.end(),
                             [&](const auto& p) { return p->session_id() == session_id; });
    if (n >= options_.max_per_session)
      return ResourceExhausted(
          fmt::format("session {} has {} terminals already, the most it may", session_id, n));
  }
  core::StreamExecRequest req = request;
  req.exec.max_output_bytes = int64_t{1} << 40;  // a stream, not a buffer: nothing is cut
  ASSIGN_OR_RETURN(OutputStream stream, agent.OpenExecStream(who, session_id, req, touched));
  if (close_stdin) RETURN_IF_ERROR(stream.CloseStdin());
  options.scrollback_bytes = options_.scrollback_bytes;
  auto process =
      std::make_shared<LiveProcess>(options_.service, req, std::move(options), std::move(stream));
  std::shared_ptr<LiveSubscription> sub = subscribe ? process->Subscribe() : nullptr;
  process->Run();
  std::lock_guard lock(mu_);
  ReapLocked();
  processes_.push_back(process);
  return std::pair{process, sub};
}

Result<std::shared_ptr<LiveProcess>> LiveProcessTable::Find(const std::string& session_id,
                                                            uint32_t pid, const std::string& tag) {
  std::lock_guard lock(mu_);
  ReapLocked();
  for (const auto& p : processes_) {
    if (p->session_id() != session_id) continue;
    if (pid != 0 ? static_cast<uint32_t>(p->pid()) == pid
                 : (!tag.empty() && p->options().tag == tag))
      return p;
  }
  return NotFound(pid != 0 ? fmt::format("process with pid {} not found", pid)
                           : fmt::format("process with tag '{}' not found", tag));
}

Result<std::shared_ptr<LiveProcess>> LiveProcessTable::FindById(const std::string& session_id,
                                                                const std::string& id) {
  std::lock_guard lock(mu_);
  ReapLocked();
  for (const auto& p : processes_)
    if (p->session_id() == session_id && !id.empty() && p->options().id == id) return p;
  return NotFound(fmt::format("terminal {} not found in session {}", id, session_id));
}

std::vector<std::shared_ptr<LiveProcess>> LiveProcessTable::List(const std::string& session_id) {
  std::lock_guard lock(mu_);
  ReapLocked();
  std::vector<std::shared_ptr<LiveProcess>> out;
  for (const auto& p : processes_)
    if (p->session_id() == session_id) out.push_back(p);
  return out;
}

Status LiveProcessTable::End(const std::string& session_id, const std::string& id,
                             const std::string& why) {
  std::shared_ptr<LiveProcess> p;
  {
    ASSIGN_OR_RETURN(p, FindById(session_id, id));
    std::lock_guard lock(mu_);
    std::erase(processes_, p);
  }
  p->End(why);
  return Status::Ok();
}

std::vector<std::shared_ptr<LiveProcess>> LiveProcessTable::EndDetached(
    std::chrono::seconds detached_for) {
  std::vector<std::shared_ptr<LiveProcess>> idle;
  TimePoint now = Now();
  {
    std::lock_guard lock(mu_);
    ReapLocked();
    std::erase_if(processes_, [&](const std::shared_ptr<LiveProcess>& p) {
      std::optional<TimePoint> since = p->DetachedSince();
      if (!since || now - *since < detached_for) return false;
      idle.push_back(p);
      return true;
    });
  }
  for (auto& p : idle) p->End(fmt::format("nobody was attached for {} s", detached_for.count()));
  return idle;
}

}  // namespace hutch::controller
