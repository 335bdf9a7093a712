#include "testing/attach_targets.h"

#include <fcntl.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <chrono>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <functional>
#include <set>
#include <sstream>
#include <thread>

#include "common/json.h"

namespace hutch::testing {

namespace {

namespace fs = std::filesystem;

bool WaitFor(const std::function<bool()>& cond, int timeout_ms) {
  auto until = std::chrono::steady_clock::now() + std::chrono::milliseconds(timeout_ms);
  while (std::chrono::steady_clock::now() < until) {
    if (cond()) return true;
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  return cond();
}

std::string ReadAll(const std::string& path) {
  std::ifstream in(path);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

// Copies `binary` and the libraries ldd names into `root`, at the same paths.
void CopyWithLibraries(const std::string& binary, const std::string& root) {
  std::set<std::string> files{binary};
  std::string ldd = ShellOut("ldd " + binary + " 2>/dev/null || true");
  std::istringstream lines(ldd);
  for (std::string line; std::getline(lines, line);) {
    std::istringstream words(line);
    for (std::string w; words >> w;)
      if (w.starts_with("/")) files.insert(w);
  }
  for (const auto& f : files) {
    fs::path dest = fs::path(root) / fs::path(f).relative_path();
    fs::create_directories(dest.parent_path());
    fs::copy_file(fs::canonical(f), dest, fs::copy_options::overwrite_existing);
    chmod(dest.c_str(), 0755);
  }
}

}  // namespace

std::string ShellOut(const std::string& command, int* exit_status) {
  std::string out;
  FILE* p = popen(command.c_str(), "r");
  if (!p) {
    ADD_FAILURE() << "popen " << command;
    return "";
  }
  char buf[4096];
  size_t n;
  while ((n = fread(buf, 1, sizeof buf, p)) > 0) out.append(buf, n);
  int st = pclose(p);
  if (exit_status) {
    *exit_status = st;
  } else if (st != 0) {
    ADD_FAILURE() << command << ": exit status " << st;
  }
  return out;
}

std::vector<pid_t> PidsInNamespaceOf(pid_t pid) {
  std::vector<pid_t> out;
  struct stat target;
  if (stat(("/proc/" + std::to_string(pid) + "/ns/pid").c_str(), &target) != 0) return out;
  for (const auto& e : fs::directory_iterator("/proc")) {
    std::string name = e.path().filename();
    if (name.find_first_not_of("0123456789") != std::string::npos) continue;
    struct stat st;
    if (stat((e.path() / "ns/pid").c_str(), &st) != 0) continue;
    if (st.st_ino == target.st_ino && st.st_dev == target.st_dev) out.push_back(std::stoi(name));
  }
  return out;
}

UnsharedProcess::UnsharedProcess(const std::string& hostname, const std::string& secret) {
  std::string script = "hostname " + hostname + " && mount -t tmpfs none /mnt && echo " + secret +
                       " > /mnt/secret && exec sleep 100000";
  outer_ = fork();
  if (outer_ == 0) {
    int null = open("/dev/null", O_RDWR);
    dup2(null, 0);
    dup2(null, 1);
    execl("/usr/bin/unshare", "unshare", "--fork", "--pid", "--mount", "--uts", "--ipc", "--net",
          "--mount-proc", "/bin/sh", "-c", script.c_str(), static_cast<char*>(nullptr));
    _exit(127);
  }
  // The child of unshare is PID 1 of the new namespace; ready once its file is there.
  bool ready = WaitFor(
      [&] {
        std::string children = ReadAll("/proc/" + std::to_string(outer_) + "/task/" +
                                       std::to_string(outer_) + "/children");
        if (children.empty()) return false;
        inner_ = std::stoi(children);
        return ReadAll("/proc/" + std::to_string(inner_) + "/root/mnt/secret") == secret + "\n";
      },
      10000);
  if (!ready) {
    ADD_FAILURE() << "the unshared process did not start";
    inner_ = 0;
  }
}

UnsharedProcess::~UnsharedProcess() {
  if (outer_ > 0) {
    kill(outer_, SIGKILL);
    if (inner_ > 0) kill(inner_, SIGKILL);
    waitpid(outer_, nullptr, 0);
  }
}

RuncContainer::RuncContainer(const std::string& dir, const std::string& id,
                             const std::string& hostname, const std::string& secret, bool as_user)
    : root_(dir + "/runc-state"), id_(id) {
  std::string bundle = dir + "/bundle-" + id;
  std::string rootfs = bundle + "/rootfs";
  fs::create_directories(rootfs);
  for (const char* d : {"proc", "sys", "dev", "tmp", "etc", "root"})
    fs::create_directories(fs::path(rootfs) / d);
  for (const char* b :
       {"/bin/sh", "/bin/cat", "/bin/hostname", "/bin/sleep", "/bin/ls", "/usr/bin/setsid"})
    CopyWithLibraries(b, rootfs);
  std::ofstream(rootfs + "/etc/only-here") << secret << "\n";
  ShellOut("cd " + bundle + " && runc spec");
  json::object spec = json::parse(ReadAll(bundle + "/config.json")).as_object();
  json::object& process = spec["process"].as_object();
  process["terminal"] = false;
  process["args"] = json::array{json::value("/bin/sleep"), json::value("100000")};
  spec["hostname"] = hostname;
  spec["root"].as_object()["readonly"] = false;
  if (as_user) {
    process["user"] =
        json::object{{"uid", 1000}, {"gid", 1000}, {"additionalGids", json::array{27}}};
    process["noNewPrivileges"] = false;
    spec["linux"].as_object()["seccomp"] =
        json::object{{"defaultAction", "SCMP_ACT_ALLOW"},
                     {"architectures", json::array{"SCMP_ARCH_X86_64", "SCMP_ARCH_X86"}},
                     {"syscalls", json::array{json::object{{"names", json::array{"sethostname"}},
                                                           {"action", "SCMP_ACT_ERRNO"},
                                                           {"errnoRet", 38}}}}};
  }
  std::ofstream(bundle + "/config.json") << json::serialize(spec);
  ShellOut("runc --root " + root_ + " run -d -b " + bundle + " " + id_ +
           " </dev/null >/dev/null 2>&1");
  std::string state = ShellOut("runc --root " + root_ + " state " + id_);
  auto parsed = ParseJsonObject(state);
  if (!parsed.ok() || !parsed->contains("pid")) {
    ADD_FAILURE() << "runc state: " << state;
    return;
  }
  pid_ = static_cast<pid_t>(parsed->at("pid").as_int64());
}

RuncContainer::~RuncContainer() {
  int st;
  ShellOut("runc --root " + root_ + " kill " + id_ + " KILL >/dev/null 2>&1", &st);
  WaitFor([&] { return State() != "running"; }, 5000);
  ShellOut("runc --root " + root_ + " delete -f " + id_ + " >/dev/null 2>&1", &st);
}

std::string RuncContainer::State() const {
  int st;
  std::string out = ShellOut("runc --root " + root_ + " state " + id_ + " 2>/dev/null", &st);
  auto parsed = ParseJsonObject(out);
  if (!parsed.ok() || !parsed->contains("status")) return "";
  return std::string(parsed->at("status").as_string());
}

}  // namespace hutch::testing

namespace hutch::testing {

namespace {

constexpr const char* kDockerCli = "/usr/bin/docker";
constexpr const char* kDockerImage = "hutch-attach-test:1";

}  // namespace

DockerDaemon::DockerDaemon(const std::string& dir)
    : dir_(dir + "/docker"),
      socket_(dir_ + "/docker.sock"),
      cgroup_parent_("hutch-test-docker-" + std::to_string(getpid()) + "-" +
                     std::to_string(reinterpret_cast<uintptr_t>(this) & 0xffffff)) {
  fs::create_directories(dir_);
  // An empty daemon.json of its own: nothing of the host's /etc/docker applies.
  std::ofstream(dir_ + "/daemon.json") << "{}\n";
  std::vector<std::string> args = {
      "/usr/sbin/dockerd",
      "--config-file=" + dir_ + "/daemon.json",
      "--data-root=" + dir_ + "/data",
      "--exec-root=" + dir_ + "/exec",
      "--pidfile=" + dir_ + "/dockerd.pid",
      "--host=unix://" + socket_,
      "--bridge=none",
      "--iptables=false",
      "--ip6tables=false",
      "--ip-masq=false",
      "--userland-proxy=false",
      "--cgroup-parent=/" + cgroup_parent_,
      "--containerd-namespace=" + cgroup_parent_,
      "--containerd-plugins-namespace=" + cgroup_parent_ + "-plugins",
      "--log-level=warn",
  };
  std::string log = dir_ + "/dockerd.log";
  pid_ = fork();
  if (pid_ == 0) {
    int null = open("/dev/null", O_RDWR);
    int out = open(log.c_str(), O_WRONLY | O_CREAT | O_APPEND, 0600);
    dup2(null, 0);
    dup2(out, 1);
    dup2(out, 2);
    std::vector<char*> argv;
    for (auto& a : args) argv.push_back(a.data());
    argv.push_back(nullptr);
    execv(argv[0], argv.data());
    _exit(127);
  }
  int st = 0;
  ok_ = WaitFor(
      [&] {
        if (waitpid(pid_, nullptr, WNOHANG) == pid_) {
          pid_ = 0;
          return true;
        }
        Docker("version --format '{{.Server.Version}}' >/dev/null 2>&1", &st);
        return st == 0;
      },
      30000);
  ok_ = ok_ && pid_ > 0;
  if (!ok_) {
    std::string tail = ReadAll(log);
    error_ = "dockerd did not start: " + tail.substr(tail.size() > 2000 ? tail.size() - 2000 : 0);
    return;
  }
  // The image: the same host binaries the runc container has, imported from a local tar.
  std::string rootfs = dir_ + "/rootfs";
  for (const char* d : {"proc", "sys", "dev", "tmp", "etc", "root"})
    fs::create_directories(fs::path(rootfs) / d);
  for (const char* b :
       {"/bin/sh", "/bin/cat", "/bin/hostname", "/bin/sleep", "/bin/ls", "/usr/bin/setsid"})
    CopyWithLibraries(b, rootfs);
  ShellOut("tar -C " + rootfs + " -cf " + dir_ + "/rootfs.tar .");
  Docker(std::string("import ") + dir_ + "/rootfs.tar " + kDockerImage + " >/dev/null", &st);
  if (st != 0) {
    ok_ = false;
    error_ = "docker import failed";
  }
}

DockerDaemon::~DockerDaemon() {
  int st;
  if (ok_) {
    std::string ids = Docker("ps -aq 2>/dev/null", &st);
    if (!ids.empty()) {
      for (char& c : ids)
        if (c == '\n') c = ' ';
      Docker("rm -f " + ids + " >/dev/null 2>&1", &st);
    }
  }
  if (pid_ > 0) {
    // SIGTERM: dockerd stops its containerd and unmounts its layers before it exits.
    kill(pid_, SIGTERM);
    if (!WaitFor([&] { return waitpid(pid_, nullptr, WNOHANG) == pid_; }, 20000)) {
      kill(pid_, SIGKILL);
      waitpid(pid_, nullptr, 0);
    }
  }
  // Whatever it left mounted under its roots, then the cgroup parent in every hierarchy.
  ShellOut("awk '{print $5}' /proc/self/mountinfo | grep '^" + dir_ +
               "' | sort -r | xargs -r -n1 umount -l 2>/dev/null",
           &st);
  ShellOut("find /sys/fs/cgroup -maxdepth 3 -type d -name '" + cgroup_parent_ +
               "' 2>/dev/null | xargs -r rmdir 2>/dev/null",
           &st);
}

std::string DockerDaemon::Docker(const std::string& args, int* exit_status) const {
  return ShellOut(std::string(kDockerCli) + " -H unix://" + socket_ + " " + args, exit_status);
}

std::string DockerDaemon::Run(const std::string& name, const std::string& hostname,
                              const std::string& secret) {
  // The file only the container has: written into the container after it starts, so the image
  // stays one for every test.
  std::string id = Docker("run -d --network none --name " + name + " --hostname " + hostname + " " +
                          kDockerImage + " /bin/sleep 100000");
  while (!id.empty() && id.back() == '\n') id.pop_back();
  if (id.empty()) return "";
  Docker("exec " + name + " /bin/sh -c 'echo " + secret + " > /etc/only-here'");
  return id;
}

pid_t DockerDaemon::Pid(const std::string& name) const {
  int st;
  std::string out = Docker("inspect -f '{{.State.Pid}}' " + name + " 2>/dev/null", &st);
  return st == 0 && !out.empty() ? static_cast<pid_t>(std::stoi(out)) : 0;
}

}  // namespace hutch::testing
