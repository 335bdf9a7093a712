#include "api/e2b_processes.h"

#include <poll.h>

#include <chrono>

#include <fmt/format.h>

namespace hutch::api::e2b {

namespace {

// How long the reader waits for output before letting a writer's turn come round: input sent
// meanwhile waits at most this long for the stream.
constexpr int kPollMs = 20;
// How long input may wait for a process that takes none of it.
constexpr std::chrono::seconds kStdinPatience{60};

}  // namespace

std::optional<ProcessEvent> Subscription::Wait(int64_t timeout_ms) {
  std::unique_lock lock(mu_);
  cv_.wait_for(lock, std::chrono::milliseconds(timeout_ms),
               [&] { return cancelled_ || !events_.empty(); });
  if (cancelled_ || events_.empty()) return std::nullopt;
  ProcessEvent e = std::move(events_.front());
  events_.pop_front();
  return e;
}

void Subscription::Cancel() {
  {
    std::lock_guard lock(mu_);
    cancelled_ = true;
  }
  cv_.notify_all();
}

void Subscription::Push(ProcessEvent e) {
  {
    std::lock_guard lock(mu_);
    if (cancelled_) return;
    events_.push_back(std::move(e));
  }
  cv_.notify_all();
}

Process::Process(std::string session_id, ProcessSpec spec, controller::OutputStream stream)
    : session_id_(std::move(session_id)),
      spec_(std::move(spec)),
      pid_(stream.pid()),
      stream_(std::move(stream)) {}

Process::~Process() {
  stop_ = true;
  if (thread_.joinable()) thread_.join();
}

void Process::Run() {
  thread_ = std::thread([this] { Pump(); });
}

bool Process::ended() const {
  std::lock_guard lock(mu_);
  return ended_;
}

std::shared_ptr<Subscription> Process::Subscribe() {
  std::lock_guard lock(mu_);
  if (ended_) return nullptr;
  auto sub = std::make_shared<Subscription>();
  subscribers_.push_back(sub);
  return sub;
}

void Process::Publish(ProcessEvent e) {
  std::lock_guard lock(mu_);
  if (e.kind == ProcessEvent::Kind::kEnd) ended_ = true;
  std::vector<std::weak_ptr<Subscription>> alive;
  for (auto& weak : subscribers_) {
    if (auto sub = weak.lock()) {
      sub->Push(e);
      alive.push_back(std::move(weak));
    }
  }
  subscribers_ = std::move(alive);
}

void Process::Pump() {
  while (!stop_) {
    Result<std::optional<controller::OutputStream::Event>> next =
        std::optional<controller::OutputStream::Event>();
    {
      std::lock_guard lock(io_mu_);
      next = stream_.Next(0);
    }
    if (!next.ok()) {
      ProcessEvent end;
      end.error = next.status().message();
      Publish(std::move(end));
      return;
    }
    if (!next->has_value()) {
      pollfd p{stream_.fd(), POLLIN, 0};
      ::poll(&p, 1, kPollMs);
      continue;
    }
    controller::OutputStream::Event& ev = **next;
    ProcessEvent e;
    e.data = std::move(ev.data);
    e.exit = ev.exit;
    switch (ev.kind) {
      case controller::OutputStream::Event::Kind::kStdout:
        e.kind = spec_.pty ? ProcessEvent::Kind::kPty : ProcessEvent::Kind::kStdout;
        break;
      case controller::OutputStream::Event::Kind::kStderr:
        e.kind = ProcessEvent::Kind::kStderr;
        break;
      case controller::OutputStream::Event::Kind::kExit:
        e.kind = ProcessEvent::Kind::kEnd;
        break;
    }
    bool end = e.kind == ProcessEvent::Kind::kEnd;
    Publish(std::move(e));
    if (end) return;
  }
}

// In pieces the agent takes at once, never waiting for its credit with the stream held: the
// reader must keep taking output meanwhile, or a command that echoes its input (cat) would stop
// reading it once its output waits, and the write would wait forever.
Status Process::WriteInput(std::string_view data) {
  auto deadline = std::chrono::steady_clock::now() + kStdinPatience;
  while (!data.empty()) {
    size_t n = 0;
    {
      std::lock_guard lock(io_mu_);
      ASSIGN_OR_RETURN(n, stream_.WriteSomeStdin(data));
    }
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

Status Process::CloseStdin() {
  std::lock_guard lock(io_mu_);
  return stream_.CloseStdin();
}

Status Process::Signal(int sig) {
  std::lock_guard lock(io_mu_);
  return stream_.Signal(sig);
}

Status Process::Resize(uint16_t rows, uint16_t cols) {
  if (!spec_.pty) return InvalidArgument(fmt::format("process {} has no terminal", pid_));
  std::lock_guard lock(io_mu_);
  return stream_.Resize(rows, cols);
}

ProcessTable::~ProcessTable() { Clear(); }

void ProcessTable::Clear() {
  std::vector<std::shared_ptr<Process>> all;
  {
    std::lock_guard lock(mu_);
    all.swap(processes_);
  }
  all.clear();  // each joins its reader (a stream that still holds one lets it go later)
}

void ProcessTable::ReapLocked() {
  std::erase_if(processes_, [](const std::shared_ptr<Process>& p) { return p->ended(); });
}

Result<std::pair<std::shared_ptr<Process>, std::shared_ptr<Subscription>>> ProcessTable::Start(
    controller::SandboxAgent& agent, const core::Principal& who, const std::string& session_id,
    const ProcessSpec& spec) {
  core::StreamExecRequest req;
  req.exec.argv.push_back(spec.cmd);
  req.exec.argv.insert(req.exec.argv.end(), spec.args.begin(), spec.args.end());
  req.exec.env = spec.envs;
  req.exec.cwd = spec.cwd;
  req.exec.max_output_bytes = int64_t{1} << 40;  // a stream, not a buffer: nothing is cut
  req.tty = spec.pty;
  req.rows = spec.rows;
  req.cols = spec.cols;
  ASSIGN_OR_RETURN(controller::OutputStream stream, agent.OpenExecStream(who, session_id, req));
  // Without stdin the command reads end-of-file, as E2B's envd gives it.
  if (!spec.stdin && !spec.pty) RETURN_IF_ERROR(stream.CloseStdin());
  auto process = std::make_shared<Process>(session_id, spec, std::move(stream));
  std::shared_ptr<Subscription> sub = process->Subscribe();
  process->Run();
  std::lock_guard lock(mu_);
  ReapLocked();
  processes_.push_back(process);
  return std::pair{process, sub};
}

Result<std::shared_ptr<Process>> ProcessTable::Find(const std::string& session_id, uint32_t pid,
                                                    const std::string& tag) {
  std::lock_guard lock(mu_);
  ReapLocked();
  for (const auto& p : processes_) {
    if (p->session_id() != session_id) continue;
    if (pid != 0 ? static_cast<uint32_t>(p->pid()) == pid : (!tag.empty() && p->spec().tag == tag))
      return p;
  }
  return NotFound(pid != 0 ? fmt::format("process with pid {} not found", pid)
                           : fmt::format("process with tag '{}' not found", tag));
}

std::vector<std::shared_ptr<Process>> ProcessTable::List(const std::string& session_id) {
  std::lock_guard lock(mu_);
  ReapLocked();
  std::vector<std::shared_ptr<Process>> out;
  for (const auto& p : processes_)
    if (p->session_id() == session_id) out.push_back(p);
  return out;
}

}  // namespace hutch::api::e2b
