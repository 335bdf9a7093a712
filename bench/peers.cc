#include "peers.h"

#include <sys/stat.h>
#include <unistd.h>

#include <fstream>
#include <sstream>
#include <vector>

#include <fmt/format.h>

#include "common/json.h"
#include "process.h"

namespace hutch::bench {

namespace {

// The top-level directories /bin/true and its libraries may live in. On a merged-usr host (Debian
// 12) each is a symlink into /usr and the sandbox gets the same symlink; where one is a real
// directory it is bound read-only instead.
struct RootEntry {
  std::string name;    // "bin"
  std::string target;  // the symlink's target ("usr/bin"), empty for a real directory
};

std::vector<RootEntry> HostRootEntries() {
  std::vector<RootEntry> out;
  for (const char* name : {"bin", "sbin", "lib", "lib64"}) {
    std::string path = std::string("/") + name;
    struct stat st;
    if (lstat(path.c_str(), &st) != 0) continue;
    RootEntry e{name, ""};
    if (S_ISLNK(st.st_mode)) {
      char buf[4096];
      ssize_t n = readlink(path.c_str(), buf, sizeof buf - 1);
      if (n <= 0) continue;
      e.target.assign(buf, static_cast<size_t>(n));
    } else if (!S_ISDIR(st.st_mode)) {
      continue;
    }
    out.push_back(std::move(e));
  }
  return out;
}

std::string FirstLine(std::string s) {
  size_t nl = s.find('\n');
  if (nl != std::string::npos) s.resize(nl);
  return s;
}

class BwrapPeer : public Peer {
 public:
  BwrapPeer(std::vector<std::string> args, std::string version, std::string stderr_path)
      : argv_(std::move(args)),
        version_(std::move(version)),
        stderr_path_(std::move(stderr_path)) {}
  ~BwrapPeer() override { unlink(stderr_path_.c_str()); }

  std::string name() const override { return "bwrap"; }
  std::string version() const override { return version_; }
  std::string command() const override { return argv_.ToString(); }

  Result<int64_t> RunOnce(int) override {
    ASSIGN_OR_RETURN(TimedRun run, SpawnTimed(argv_, stderr_path_));
    if (!WIFEXITED(run.wait_status) || WEXITSTATUS(run.wait_status) != 0)
      return Internal("bwrap " + DescribeWaitStatus(run.wait_status, stderr_path_));
    return run.elapsed_ns;
  }

 private:
  Argv argv_;
  std::string version_;
  std::string stderr_path_;
};

class RuncPeer : public Peer {
 public:
  RuncPeer(std::string runc, std::string work_dir)
      : runc_(std::move(runc)),
        bundle_(work_dir + "/runc-bundle"),
        state_(work_dir + "/runc-state"),
        stderr_path_(work_dir + "/runc.stderr"),
        id_prefix_(fmt::format("hutch-bench-{}-", getpid())) {}

  ~RuncPeer() override {
    // An interrupted `runc run` can leave its container behind; delete whatever the state dir
    // still knows (it only ever holds this run's containers).
    Result<std::string> ids = RunCapture({runc_, "--root", state_, "list", "-q"});
    if (ids.ok()) {
      std::stringstream ss(*ids);
      for (std::string id; std::getline(ss, id);) {
        if (!id.empty()) (void)RunCapture({runc_, "--root", state_, "delete", "--force", id});
      }
    }
    RemoveTree(bundle_);
    RemoveTree(state_);
    unlink(stderr_path_.c_str());
  }

  Status Prepare() {
    ASSIGN_OR_RETURN(std::string version, RunCapture({runc_, "--version"}));
    version_ = FirstLine(version);
    if (mkdir(bundle_.c_str(), 0700) != 0) return ErrnoError("mkdir " + bundle_, errno);
    if (mkdir(state_.c_str(), 0700) != 0) return ErrnoError("mkdir " + state_, errno);
    std::string rootfs = bundle_ + "/rootfs";
    for (const std::string& dir : {rootfs, rootfs + "/usr"}) {
      if (mkdir(dir.c_str(), 0755) != 0) return ErrnoError("mkdir " + dir, errno);
    }
    RETURN_IF_ERROR(RunCapture({runc_, "spec", "--bundle", bundle_}, stderr_path_).status());

    std::string config_path = bundle_ + "/config.json";
    ASSIGN_OR_RETURN(json::object config, ParseJsonObject(ReadFileOrEmpty(config_path)));
    json::object* process = config["process"].if_object();
    json::object* root = config["root"].if_object();
    json::array* mounts = config["mounts"].if_array();
    if (process == nullptr || root == nullptr || mounts == nullptr)
      return Internal("`runc spec` wrote a config.json without process, root or mounts");
    (*process)["terminal"] = false;
    (*process)["args"] = json::array{"/bin/true"};
    (*root)["path"] = rootfs;
    (*root)["readonly"] = true;
    auto bind_ro = [mounts](const std::string& dir) {
      mounts->push_back(json::object{{"destination", dir},
                                     {"type", "bind"},
                                     {"source", dir},
                                     {"options", json::array{"rbind", "ro", "nosuid", "nodev"}}});
    };
    bind_ro("/usr");
    for (const RootEntry& e : HostRootEntries()) {
      std::string path = rootfs + "/" + e.name;
      if (e.target.empty()) {
        if (mkdir(path.c_str(), 0755) != 0) return ErrnoError("mkdir " + path, errno);
        bind_ro("/" + e.name);
      } else if (symlink(e.target.c_str(), path.c_str()) != 0) {
        return ErrnoError("symlink " + path, errno);
      }
    }
    std::ofstream out(config_path, std::ios::trunc);
    out << json::serialize(config);
    if (!out.flush()) return ErrnoError("write " + config_path, errno);
    return Status::Ok();
  }

  std::string name() const override { return "runc"; }
  std::string version() const override { return version_; }
  std::string command() const override {
    return fmt::format("{} --root {} run --bundle {} {}<i>", runc_, state_, bundle_, id_prefix_);
  }

  Result<int64_t> RunOnce(int round) override {
    // `runc run` in the foreground creates the container, starts it, waits for it and deletes
    // it: the whole life cycle in one command.
    Argv argv(
        {runc_, "--root", state_, "run", "--bundle", bundle_, id_prefix_ + std::to_string(round)});
    ASSIGN_OR_RETURN(TimedRun run, SpawnTimed(argv, stderr_path_));
    if (!WIFEXITED(run.wait_status) || WEXITSTATUS(run.wait_status) != 0)
      return Internal("runc " + DescribeWaitStatus(run.wait_status, stderr_path_));
    return run.elapsed_ns;
  }

 private:
  std::string runc_;
  std::string bundle_;
  std::string state_;
  std::string stderr_path_;
  std::string id_prefix_;
  std::string version_;
};

}  // namespace

Result<std::unique_ptr<Peer>> MakeBwrapPeer(const std::string& bwrap, const std::string& work_dir) {
  std::string stderr_path = work_dir + "/bwrap.stderr";
  ASSIGN_OR_RETURN(std::string version, RunCapture({bwrap, "--version"}, stderr_path));
  std::vector<std::string> args = {bwrap,       "--unshare-all", "--die-with-parent",
                                   "--ro-bind", "/usr",          "/usr"};
  for (const RootEntry& e : HostRootEntries()) {
    if (e.target.empty()) {
      args.insert(args.end(), {"--ro-bind", "/" + e.name, "/" + e.name});
    } else {
      args.insert(args.end(), {"--symlink", e.target, "/" + e.name});
    }
  }
  args.insert(args.end(),
              {"--proc", "/proc", "--dev", "/dev", "--tmpfs", "/tmp", "--", "/bin/true"});
  return std::unique_ptr<Peer>(
      new BwrapPeer(std::move(args), FirstLine(version), std::move(stderr_path)));
}

Result<std::unique_ptr<Peer>> MakeRuncPeer(const std::string& runc, const std::string& work_dir) {
  auto peer = std::make_unique<RuncPeer>(runc, work_dir);
  RETURN_IF_ERROR(peer->Prepare().WithContext("prepare the runc bundle"));
  return std::unique_ptr<Peer>(std::move(peer));
}

}  // namespace hutch::bench
