#include "testing/server_process.h"

#include <dirent.h>
#include <ftw.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdlib>
#include <fstream>
#include <memory>
#include <string_view>
#include <thread>

#include <fmt/format.h>

#include "store/postgres/test_server.h"
#include "testing/test_store.h"
#include "testing/test_util.h"

namespace hutch::testing {

namespace {
std::string ReadFirstLine(const std::string& path) {
  std::ifstream f(path);
  std::string line;
  std::getline(f, line);
  return line;
}
}  // namespace

void RemoveTree(const std::string& path) {
  nftw(
      path.c_str(),
      [](const char* p, const struct stat*, int flag, struct FTW*) {
        if (flag == FTW_DP)
          rmdir(p);
        else
          unlink(p);
        return 0;
      },
      64, FTW_DEPTH | FTW_PHYS | FTW_MOUNT);
}

Result<std::unique_ptr<ServerProcess>> ServerProcess::Start(const std::string& hutch_binary,
                                                            const std::string& data_dir,
                                                            std::vector<std::string> extra_args) {
  std::unique_ptr<ServerProcess> p(new ServerProcess());
  p->binary_ = hutch_binary;
  p->extra_args_ = std::move(extra_args);
  if (data_dir.empty()) {
    char tmpl[] = "/tmp/hutch-it-XXXXXX";
    if (!mkdtemp(tmpl)) return ErrnoError("mkdtemp", errno);
    p->data_dir_ = tmpl;
    p->own_dir_ = true;
  } else {
    p->data_dir_ = data_dir;
  }
  // HUTCH_TEST_STORE=postgres: on PostgreSQL, unless the test chose a store itself.
  if (std::find(p->extra_args_.begin(), p->extra_args_.end(), "--store") == p->extra_args_.end()) {
    ASSIGN_OR_RETURN(std::string url, TestStoreUrlFor(p->data_dir_));
    if (!url.empty()) p->extra_args_.insert(p->extra_args_.end(), {"--store", url});
  }
  // HUTCH_TEST_DRIVER=local-tcp: on that driver, unless the test chose a driver itself.
  const char* driver = getenv("HUTCH_TEST_DRIVER");
  if (driver != nullptr && *driver != '\0' &&
      std::find(p->extra_args_.begin(), p->extra_args_.end(), "--driver") == p->extra_args_.end()) {
    p->extra_args_.insert(p->extra_args_.end(), {"--driver", driver});
  }
  RETURN_IF_ERROR(p->Spawn());
  return p;
}

void ServerProcess::CrashDuringStart(std::chrono::milliseconds after) {
  if (pid_ > 0) Stop();
  Status st = Spawn(/*wait=*/false);
  if (!st.ok()) return;
  std::this_thread::sleep_for(after);
  Kill9();
}

Status ServerProcess::Spawn(bool wait) {
  unlink((data_dir_ + "/listen.addr").c_str());
  std::string log_path = data_dir_ + "/serve.log";
  std::vector<std::string> args = {binary_,      "serve",   "--listen",    "127.0.0.1:0",
                                   "--data-dir", data_dir_, "--log-level", "debug"};
  args.insert(args.end(), extra_args_.begin(), extra_args_.end());
  std::vector<char*> argv;
  for (auto& a : args) argv.push_back(a.data());
  argv.push_back(nullptr);
  bool tls = std::find(extra_args_.begin(), extra_args_.end(), "--tls-cert") != extra_args_.end();
  pid_ = fork();
  if (pid_ < 0) return ErrnoError("fork", errno);
  if (pid_ == 0) {
    FILE* log = fopen(log_path.c_str(), "a");
    if (log) {
      dup2(fileno(log), 1);
      dup2(fileno(log), 2);
    }
    execv(binary_.c_str(), argv.data());
    _exit(127);
  }
  if (!wait) return Status::Ok();
  // Generous: on a loaded 2-core machine a restart after kill -9 (sweeps, the disk pool, the
  // user-namespace probe) has taken 30 s.
  auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(60);
  while (std::chrono::steady_clock::now() < deadline) {
    std::string addr = ReadFirstLine(data_dir_ + "/listen.addr");
    if (!addr.empty()) {
      url_ = (tls ? "https://" : "http://") + addr;
      token_ = ReadFirstLine(data_dir_ + "/admin.token");
      return Status::Ok();
    }
    int status;
    if (waitpid(pid_, &status, WNOHANG) == pid_) {
      pid_ = -1;
      return Internal(fmt::format("hutch serve exited at start; see {}", log_path));
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  return Internal(fmt::format("hutch serve did not write listen.addr in 60 s; see {}", log_path));
}

std::string ServerProcess::Log() const {
  std::ifstream f(data_dir_ + "/serve.log");
  return std::string(std::istreambuf_iterator<char>(f), std::istreambuf_iterator<char>());
}

void ServerProcess::Kill9() {
  if (pid_ <= 0) return;
  kill(pid_, SIGKILL);
  waitpid(pid_, nullptr, 0);
  pid_ = -1;
}

int ServerProcess::Stop() {
  if (pid_ <= 0) return -1;
  kill(pid_, SIGTERM);
  int status = 0;
  waitpid(pid_, &status, 0);
  pid_ = -1;
  return status;
}

Status ServerProcess::Restart() {
  if (pid_ > 0) Stop();
  return Spawn();
}

Result<std::string> TestStoreUrlFor(const std::string& data_dir) {
  const char* kind = getenv("HUTCH_TEST_STORE");
  if (kind == nullptr || *kind == '\0' || std::string_view(kind) == "sqlite") return std::string();
  if (std::string_view(kind) != "postgres")
    return InvalidArgument(fmt::format("HUTCH_TEST_STORE={}: want sqlite or postgres", kind));
  ASSIGN_OR_RETURN(store::testing::PostgresServer * pg, store::testing::SharedPostgres());
  return pg->CreateDatabase(store::testing::DatabaseNameFor(data_dir));
}

// Sandboxes outlive their server by design: those a test left running go with its data dir.
// Killed from their cgroups (thawed first: a frozen process does not die on v1), which are then
// removed; their disks' mounts, and so the loop devices, go with the last process.
void KillSandboxesOf(const std::string& data_dir) {
  DIR* d = opendir((data_dir + "/sessions").c_str());
  if (!d) return;
  std::vector<std::string> ids;
  while (dirent* e = readdir(d)) {
    if (std::string_view(e->d_name).starts_with("ses_")) ids.emplace_back(e->d_name);
  }
  closedir(d);
  for (const auto& id : ids) {
    // The group and its leaves agent and work (sandbox/cgroup.h), the leaves after it, so the
    // reverse order removes them first.
    std::vector<std::string> dirs;
    for (const auto& h : CgroupHierarchies()) {
      std::string dir = h + "/hutch/" + id;
      if (access(dir.c_str(), F_OK) != 0) continue;
      dirs.push_back(dir);
      for (const char* leaf : {"/agent", "/work"}) {
        if (access((dir + leaf).c_str(), F_OK) == 0) dirs.push_back(dir + leaf);
      }
    }
    for (const auto& dir : dirs) {
      std::ofstream(dir + "/freezer.state") << "THAWED";
      std::ofstream(dir + "/cgroup.freeze") << "0";
    }
    for (int round = 0; round < 200; ++round) {
      bool any = false;
      for (const auto& dir : dirs) {
        std::ifstream procs(dir + "/cgroup.procs");
        for (int pid; procs >> pid;) {
          any = true;
          kill(pid, SIGKILL);
        }
      }
      if (!any) break;
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
    for (auto it = dirs.rbegin(); it != dirs.rend(); ++it) rmdir(it->c_str());
  }
}

// Driver local-tcp gives every sandbox a veth and keeps its rules (table inet hutch_tcp) while
// any lives, also past its server; a server stopped with sandboxes left, which the test then
// killed, leaves the table to whoever comes next. When no local-tcp veth is left (they go with
// their namespaces, asynchronously), the table goes too. (Only local-tcp: the local driver's
// shared table is other servers' business.)
void RemoveIdleTcpAgentRules() {
  for (int round = 0; round < 200; ++round) {
    bool any = false;
    if (DIR* d = opendir("/sys/class/net")) {
      while (dirent* e = readdir(d)) any = any || std::string_view(e->d_name).starts_with("htcp-");
      closedir(d);
    }
    if (!any) {
      (void)!system("nft delete table inet hutch_tcp >/dev/null 2>&1");
      return;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
}

ServerProcess::~ServerProcess() {
  Stop();
  if (own_dir_ && getenv("HUTCH_KEEP_TEST_DIRS") == nullptr) {
    KillSandboxesOf(data_dir_);
    RemoveTree(data_dir_);
    const char* driver = getenv("HUTCH_TEST_DRIVER");
    bool tcp = (driver && std::string_view(driver) == "local-tcp") ||
               std::find(extra_args_.begin(), extra_args_.end(), "local-tcp") != extra_args_.end();
    if (tcp) RemoveIdleTcpAgentRules();
  }
}

}  // namespace hutch::testing
