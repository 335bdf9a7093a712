#include "agent/services.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <thread>

#include "agent/command.h"
#include "agent/frame_io.h"
#include "common/unique_fd.h"

namespace hutch::agent {

namespace {

int64_t NowUnixMs() {
  timeval tv{};
  gettimeofday(&tv, nullptr);
  return static_cast<int64_t>(tv.tv_sec) * 1000 + tv.tv_usec / 1000;
}

// Waits until `fd` is ready for `events` or `deadline_ms` (monotonic) passes.
bool WaitFd(int fd, short events, int64_t deadline_ms) {
  for (;;) {
    int64_t left = deadline_ms - MonotonicMs();
    if (left <= 0) return false;
    pollfd p{fd, events, 0};
    int r = poll(&p, 1, static_cast<int>(left));
    if (r > 0) return true;
    if (r < 0 && errno != EINTR) return false;
  }
}

}  // namespace

ServiceTable::CheckOutcome ServiceTable::Check(const HealthCheck& check, uint16_t port) {
  const int64_t deadline = MonotonicMs() + check.timeout_ms;
  UniqueFd socket_fd(socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0));
  if (!socket_fd) {
    return {false, std::string("socket: ") + strerror(errno)};
  }
  const int fd = socket_fd.get();
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(port);
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  std::string where = "127.0.0.1:" + std::to_string(port);
  if (connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0 && errno != EINPROGRESS) {
    return {false, "connect " + where + ": " + strerror(errno)};
  }
  if (!WaitFd(fd, POLLOUT, deadline)) {
    return {false, "connect " + where + ": timed out"};
  }
  int err = 0;
  socklen_t len = sizeof err;
  getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len);
  if (err != 0) {
    return {false, "connect " + where + ": " + strerror(err)};
  }
  if (check.kind == "tcp") {
    return {true, "connected to " + where};
  }
  std::string request = "GET " + check.http_path + " HTTP/1.0\r\nHost: " + where +
                        "\r\nUser-Agent: hutch-health\r\nConnection: close\r\n\r\n";
  size_t sent = 0;
  while (sent < request.size()) {
    if (!WaitFd(fd, POLLOUT, deadline)) {
      return {false, "GET " + check.http_path + ": timed out sending"};
    }
    ssize_t n = send(fd, request.data() + sent, request.size() - sent, MSG_NOSIGNAL);
    if (n < 0 && errno != EAGAIN && errno != EINTR) {
      return {false, "GET " + check.http_path + ": " + strerror(errno)};
    }
    if (n > 0) sent += static_cast<size_t>(n);
  }
  // The status line is all a check reads: "HTTP/1.x NNN …".
  std::string head;
  while (head.find('\n') == std::string::npos && head.size() < 512) {
    if (!WaitFd(fd, POLLIN, deadline)) {
      return {false, "GET " + check.http_path + ": no answer within the timeout"};
    }
    char buf[256];
    ssize_t n = recv(fd, buf, sizeof buf, 0);
    if (n == 0) break;
    if (n < 0) {
      if (errno == EAGAIN || errno == EINTR) continue;
      return {false, "GET " + check.http_path + ": " + strerror(errno)};
    }
    head.append(buf, static_cast<size_t>(n));
  }
  int status = 0;
  if (head.rfind("HTTP/1.", 0) != 0 || head.size() < 12 ||
      sscanf(head.c_str() + 9, "%3d", &status) != 1) {
    return {false, "GET " + check.http_path + ": not an HTTP answer"};
  }
  return {status >= 200 && status < 400, "GET " + check.http_path + ": " + std::to_string(status)};
}

Status ServiceTable::Launch(Service& s) {
  ProcessStartRequest request;
  request.exec = s.info.spec.exec;
  request.tag = s.info.spec.name;
  ASSIGN_OR_RETURN(ProcessInfo pinfo, processes_->Start(request, /*retag_ended=*/true));
  s.instance = processes_->Find(request.tag);
  s.instance_start_ms = MonotonicMs();
  s.info.pid = pinfo.pid;
  s.info.started_unix_ms = pinfo.started_unix_ms;
  s.info.next_restart_unix_ms = 0;
  s.info.state = s.info.spec.health.kind.empty() ? "running" : "starting";
  s.info.health = s.info.spec.health.kind.empty() ? "none" : "starting";
  s.info.health_message.clear();
  s.failures = 0;
  s.next_check_ms = MonotonicMs();
  return Status::Ok();
}

Result<ServiceInfo> ServiceTable::Start(const ServiceSpec& spec) {
  std::call_once(started_, [this] { std::thread([this] { Run(); }).detach(); });
  std::lock_guard lock(mu_);
  if (services_.size() >= kMaxServices) {
    return ResourceExhausted("a session has at most " + std::to_string(kMaxServices) + " services");
  }
  for (const auto& s : services_) {
    if (s->info.spec.name == spec.name) {
      return Conflict("service " + spec.name + " exists already");
    }
  }
  if (auto p = processes_->Find(spec.name); p && p->Info().tag == spec.name) {
    return Conflict("a process with tag " + spec.name + " exists already");
  }
  auto s = std::make_unique<Service>();
  s->info.spec = spec;
  RETURN_IF_ERROR(Launch(*s));
  ServiceInfo info = s->info;
  info.spec.exec.stdin_data.clear();
  services_.push_back(std::move(s));
  return info;
}

std::vector<ServiceInfo> ServiceTable::List() {
  std::lock_guard lock(mu_);
  std::vector<ServiceInfo> out;
  for (const auto& s : services_) {
    out.push_back(s->info);
    out.back().spec.exec.stdin_data.clear();
  }
  return out;
}

Result<ServiceInfo> ServiceTable::Stop(const std::string& name) {
  std::lock_guard lock(mu_);
  for (auto& s : services_) {
    if (s->info.spec.name != name) continue;
    if (s->info.state != "stopping") {
      s->info.state = "stopping";
      s->kill_at_ms = MonotonicMs() + kStopGraceMs;
      if (s->instance && s->instance->Info().running) SignalGroup(s->info.pid, SIGTERM);
    }
    return s->info;
  }
  return NotFound("no service " + name);
}

void ServiceTable::Supervise(Service& s, int64_t now) {
  ServiceInfo& info = s.info;
  ProcessInfo p = s.instance ? s.instance->Info() : ProcessInfo{};
  const bool running = s.instance && p.running;
  if (info.state == "stopping") {
    if (running && now >= s.kill_at_ms) SignalGroup(info.pid, SIGKILL);
    return;
  }
  if (running || info.state == "backoff" || info.state == "exited" || info.state == "failed") {
    if (info.state == "backoff" && now >= s.next_restart_ms) {
      ++info.restarts;
      if (Status st = Launch(s); !st.ok()) {
        info.state = "failed";
        info.health_message = "restart failed: " + st.message();
      }
    }
    return;
  }
  // The instance ended.
  info.last_exit_code = p.exit_code;
  info.last_signal = p.signal;
  info.pid = 0;
  if (!info.spec.health.kind.empty()) info.health = "unhealthy";
  const bool failed = p.exit_code != 0 || p.signal != 0;
  const bool restart =
      info.spec.restart == "always" || (info.spec.restart == "on-failure" && failed);
  if (!restart) {
    info.state = failed ? "failed" : "exited";
    return;
  }
  // A crash loop backs off; an instance that ran a while starts the count over.
  if (now - s.instance_start_ms >= kStableMs) s.backoff_ms = kBackoffMinMs;
  s.next_restart_ms = now + s.backoff_ms;
  info.next_restart_unix_ms = NowUnixMs() + s.backoff_ms;
  s.backoff_ms = std::min(s.backoff_ms * 2, kBackoffMaxMs);
  info.state = "backoff";
}

void ServiceTable::Run() {
  for (;;) {
    struct Due {
      Service* service;
      HealthCheck check;
      uint16_t port;
      int32_t pid;
    };
    std::vector<Due> due;
    {
      std::lock_guard lock(mu_);
      int64_t now = MonotonicMs();
      for (auto& s : services_) Supervise(*s, now);
      // Forget the stopped services whose instance is gone.
      std::erase_if(services_, [](const std::unique_ptr<Service>& s) {
        return s->info.state == "stopping" && (!s->instance || !s->instance->Info().running);
      });
      for (auto& s : services_) {
        const bool checking = s->info.state == "starting" || s->info.state == "running";
        if (checking && !s->info.spec.health.kind.empty() && now >= s->next_check_ms) {
          // Until its first pass, a starting instance is checked often: a session waiting for
          // it to be ready (and anyone polling) learns within kStartingCheckMs that it is.
          int64_t interval = s->info.spec.health.interval_ms;
          if (s->info.state == "starting") interval = std::min(interval, kStartingCheckMs);
          s->next_check_ms = now + interval;
          due.push_back({s.get(), s->info.spec.health, s->info.spec.port, s->info.pid});
        }
      }
    }
    // Checks run unlocked (each up to its timeout); only this thread erases services, so the
    // pointers stay valid.
    for (Due& d : due) {
      CheckOutcome outcome = Check(d.check, d.port);
      std::lock_guard lock(mu_);
      Service& s = *d.service;
      if (s.info.pid != d.pid || s.info.state == "stopping") continue;  // another instance now
      s.info.health_message = std::move(outcome.message);
      if (outcome.passed) {
        s.failures = 0;
        s.info.health = "healthy";
        s.info.state = "running";
      } else if (s.info.state != "starting" && ++s.failures >= s.info.spec.health.retries) {
        // A starting instance that fails its checks is still starting (health_message says
        // why); only one that passed once can turn unhealthy.
        s.info.health = "unhealthy";
      }
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(kTickMs));
  }
}

}  // namespace hutch::agent
