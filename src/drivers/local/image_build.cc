// Images of the local driver: the built-in `host`, uploaded OCI archives (spooled to the image
// store's tmp/ and imported there), debootstrap builds, and commits of a session's writable layer.
#include <fcntl.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <sys/mount.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cctype>

#include <fmt/format.h>

#include "common/ids.h"
#include "common/log.h"
#include "common/scope_guard.h"
#include "common/time.h"
#include "drivers/local/local_driver_impl.h"
#include "sandbox/fs.h"

namespace hutch::drivers::local {

namespace {

ImageInfo ImageInfoOf(const local::ImageRecord& m) {
  ImageInfo info;
  info.name = m.name;
  info.owner = m.owner;
  info.source = m.source;
  info.source_digest = m.source_digest;
  for (const auto& l : m.layers) info.layers.push_back({l.digest, l.size_bytes});
  info.size_bytes = m.size_bytes();
  info.created_at = m.created_at;
  info.env = m.config.env;
  info.cmd = m.config.cmd;
  info.workdir = m.config.workdir;
  return info;
}

// Where the debootstrap script is; "" when it is not installed.
std::string FindDebootstrap() {
  for (const char* p : {"/usr/sbin/debootstrap", "/sbin/debootstrap", "/usr/bin/debootstrap"})
    if (access(p, X_OK) == 0) return p;
  return "";
}

bool ValidDebianWord(std::string_view w, bool allow_url) {
  if (w.empty() || w.size() > 200) return false;
  for (char c : w) {
    bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              c == '-' || c == '.' || c == '+' || c == '_';
    if (allow_url) ok = ok || c == ':' || c == '/' || c == '~' || c == '%';
    if (!ok) return false;
  }
  return w[0] != '-';
}

}  // namespace

Result<std::vector<ImageInfo>> LocalDriver::ListImages() {
  ASSIGN_OR_RETURN(std::vector<ImageInfo> out, Driver::ListImages());
  ASSIGN_OR_RETURN(auto records, images_->List());
  for (const auto& m : records) out.push_back(ImageInfoOf(m));
  return out;
}

Result<ImageInfo> LocalDriver::GetImage(const std::string& name) {
  if (name == "host") return Driver::GetImage(name);
  ASSIGN_OR_RETURN(local::ImageRecord m, images_->Get(name));
  return ImageInfoOf(m);
}

namespace {

// An upload spooled to a file of the image store's tmp/ (on the same filesystem as the layers
// it becomes), removed when the upload is dropped.
class SpoolUpload final : public ImageUpload {
 public:
  static Result<std::unique_ptr<SpoolUpload>> Create(const std::string& dir) {
    std::string path = fmt::format("{}/upload-{}", dir, NewId("u").substr(2));
    UniqueFd fd(open(path.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600));
    if (!fd) return ErrnoError("create " + path, errno);
    return std::unique_ptr<SpoolUpload>(new SpoolUpload(std::move(path), std::move(fd)));
  }
  ~SpoolUpload() override { unlink(path_.c_str()); }

  Status Write(std::string_view bytes) override {
    if (!fd_) return Internal("write after the upload finished");
    while (!bytes.empty()) {
      ssize_t w = write(fd_.get(), bytes.data(), bytes.size());
      if (w < 0 && errno == EINTR) continue;
      if (w < 0) return ErrnoError("spool the upload", errno);
      bytes.remove_prefix(static_cast<size_t>(w));
    }
    return Status::Ok();
  }
  Status Finish() override {
    // close(2) reports a write-back error (a full disk on NFS) that write(2) did not.
    if (fd_ && close(fd_.Release()) != 0) return ErrnoError("spool the upload", errno);
    return Status::Ok();
  }
  const std::string& path() const { return path_; }

 private:
  SpoolUpload(std::string path, UniqueFd fd) : path_(std::move(path)), fd_(std::move(fd)) {}
  std::string path_;
  UniqueFd fd_;
};

}  // namespace

Result<std::unique_ptr<ImageUpload>> LocalDriver::BeginImageUpload() {
  ASSIGN_OR_RETURN(std::unique_ptr<SpoolUpload> upload, SpoolUpload::Create(images_->TmpDir()));
  return std::unique_ptr<ImageUpload>(std::move(upload));
}

Result<ImageInfo> LocalDriver::ImportImage(const std::string& name, const std::string& owner,
                                           ImageUpload& upload, const std::string& format,
                                           const ProgressFn& progress) {
  auto* spooled = dynamic_cast<SpoolUpload*>(&upload);
  if (!spooled) return InvalidArgument("the upload was not made by this driver");
  RETURN_IF_ERROR(spooled->Finish());
  ASSIGN_OR_RETURN(local::ImageRecord m,
                   images_->Import(name, owner, spooled->path(), format, progress));
  return ImageInfoOf(m);
}

Status LocalDriver::DeleteImage(const std::string& name) {
  if (name == "host") return Conflict("image host is built in; it cannot be deleted");
  return images_->Delete(name);
}

namespace {

// What a debootstrap run ended with.
struct DebootstrapRun {
  int status = 0;       // waitpid's
  bool killed = false;  // cancelled
  std::string tail;     // the last 2000 bytes of its output
};

// Runs debootstrap (`args`, its path first), its output turned into progress by its phases.
Result<DebootstrapRun> RunDebootstrap(std::vector<std::string> args, const ProgressFn& progress,
                                      const std::atomic<bool>* cancel) {
  std::vector<char*> argv;
  for (auto& a : args) argv.push_back(a.data());
  argv.push_back(nullptr);
  const char* envp[] = {"PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
                        "LANG=C.UTF-8", "DEBIAN_FRONTEND=noninteractive", nullptr};
  int pipefd[2];
  if (pipe2(pipefd, O_CLOEXEC) != 0) return ErrnoError("pipe", errno);
  UniqueFd out_r(pipefd[0]), out_w(pipefd[1]);
  pid_t pid = fork();
  if (pid < 0) return ErrnoError("fork debootstrap", errno);
  if (pid == 0) {
    // In a mount namespace of its own: the /proc and /sys it mounts in the target vanish with
    // it, whatever way it ends, and never show in the host's mount table.
    // It dies with the server (a restart fails its task; the next start empties images/tmp).
    if (prctl(PR_SET_PDEATHSIG, SIGKILL) != 0) _exit(126);
    if (unshare(CLONE_NEWNS) != 0) _exit(126);
    if (mount(nullptr, "/", nullptr, MS_REC | MS_PRIVATE, nullptr) != 0) _exit(126);
    dup2(out_w.get(), 1);
    dup2(out_w.get(), 2);
    int devnull = open("/dev/null", O_RDONLY);
    if (devnull >= 0) dup2(devnull, 0);
    execve(argv[0], argv.data(), const_cast<char* const*>(envp));
    _exit(127);
  }
  out_w.Reset();
  std::string pending, tail;
  int retrieved = 0, unpacked = 0, configured = 0;
  double fraction = 0.01;
  bool killed = false;
  for (;;) {
    if (cancel && cancel->load() && !killed) {
      kill(pid, SIGKILL);
      killed = true;
    }
    pollfd p{out_r.get(), POLLIN, 0};
    int n = poll(&p, 1, 500);
    if (n < 0 && errno != EINTR) break;
    if (n <= 0) continue;
    char buf[4096];
    ssize_t r = read(out_r.get(), buf, sizeof buf);
    if (r < 0 && errno == EINTR) continue;
    if (r <= 0) break;
    pending.append(buf, static_cast<size_t>(r));
    size_t nl;
    while ((nl = pending.find('\n')) != std::string::npos) {
      std::string line = pending.substr(0, nl);
      pending.erase(0, nl + 1);
      tail += line + "\n";
      if (tail.size() > 2000) tail.erase(0, tail.size() - 2000);
      // debootstrap's phases: retrieve (~40%), extract, unpack, configure.
      if (line.rfind("I: Retrieving", 0) == 0) {
        fraction = std::min(0.35, 0.02 + 0.002 * ++retrieved);
      } else if (line.rfind("I: Extracting", 0) == 0) {
        fraction = std::max(fraction, 0.4);
      } else if (line.rfind("I: Unpacking", 0) == 0) {
        fraction = std::max(fraction, std::min(0.6, 0.45 + 0.002 * ++unpacked));
      } else if (line.rfind("I: Configuring", 0) == 0) {
        fraction = std::max(fraction, std::min(0.8, 0.6 + 0.002 * ++configured));
      } else if (line.rfind("I: Base system installed", 0) == 0) {
        fraction = 0.8;
      }
      if (progress && line.rfind("I: ", 0) == 0) progress(fraction, line.substr(3));
    }
  }
  int status = 0;
  while (waitpid(pid, &status, 0) < 0 && errno == EINTR) {
  }
  DebootstrapRun run;
  run.status = status;
  run.killed = killed;
  run.tail = std::move(tail);
  return run;
}

}  // namespace

Result<ImageInfo> LocalDriver::BuildImage(const std::string& name, const std::string& owner,
                                          const DebootstrapSpec& spec, const ProgressFn& progress,
                                          const std::atomic<bool>* cancel) {
  if (!local::IsValidImageName(name))
    return InvalidArgument(fmt::format("bad image name '{}'", name));
  if (images_->Get(name).ok()) return Conflict(fmt::format("image {} exists already", name));
  if (!ValidDebianWord(spec.suite, false)) return InvalidArgument("bad suite: " + spec.suite);
  if (!spec.variant.empty() && !ValidDebianWord(spec.variant, false))
    return InvalidArgument("bad variant: " + spec.variant);
  for (const auto& p : spec.include)
    if (!ValidDebianWord(p, false)) return InvalidArgument("bad package name: " + p);
  std::string mirror = spec.mirror.empty() ? "http://deb.debian.org/debian" : spec.mirror;
  if (!ValidDebianWord(mirror, true) ||
      (mirror.rfind("http://", 0) != 0 && mirror.rfind("https://", 0) != 0))
    return InvalidArgument("bad mirror (an http:// or https:// URL): " + mirror);
  std::string debootstrap = FindDebootstrap();
  if (debootstrap.empty())
    return Unavailable("debootstrap is not installed on the server (apt-get install debootstrap)");

  std::string dir = fmt::format("{}/debootstrap-{}", images_->TmpDir(), NewId("b").substr(2));
  RETURN_IF_ERROR(sandbox::MakeDirs(dir, 0700));
  ScopeGuard remove_dir([&] { (void)sandbox::RemoveTree(dir); });
  std::vector<std::string> args = {debootstrap};
  if (!spec.variant.empty()) args.push_back("--variant=" + spec.variant);
  if (!spec.include.empty()) {
    std::string inc = "--include=";
    for (size_t i = 0; i < spec.include.size(); ++i) inc += (i ? "," : "") + spec.include[i];
    args.push_back(inc);
  }
  args.push_back(spec.suite);
  args.push_back(dir + "/root");
  args.push_back(mirror);
  const int64_t t0 = MonotonicMillis();
  ASSIGN_OR_RETURN(DebootstrapRun run, RunDebootstrap(std::move(args), progress, cancel));
  if (run.killed) return Unavailable("the build was cancelled");
  if (!WIFEXITED(run.status) || WEXITSTATUS(run.status) != 0)
    return InvalidArgument(fmt::format("debootstrap failed (status {}): {}", run.status, run.tail));
  const int64_t t_debootstrap = MonotonicMillis() - t0;
  if (progress) progress(0.8, "debootstrap done; storing the rootfs as a layer");
  UniqueFd root(open((dir + "/root").c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
  if (!root) return ErrnoError("open " + dir + "/root", errno);
  local::ImageConfigInfo config;
  config.env = {"PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"};
  config.cmd = {"/bin/bash"};
  local::ImageProgressFn layer_progress = [&](double f, const std::string& m) {
    if (progress) progress(0.8 + 0.2 * f, m);
  };
  ASSIGN_OR_RETURN(local::ImageRecord m,
                   images_->ImportTree(name, owner, root.get(), {}, "debootstrap", spec.suite,
                                       config, layer_progress));
  LOG_INFO("image {}: debootstrap {} in {} ms, stored in {} ms", name, spec.suite, t_debootstrap,
           MonotonicMillis() - t0 - t_debootstrap);
  return ImageInfoOf(m);
}

Result<ImageInfo> LocalDriver::CommitSession(const std::string& session_id,
                                             const std::string& driver_state,
                                             const std::string& base_image,
                                             const std::string& image, const std::string& owner,
                                             bool freeze, const ProgressFn& progress) {
  if (!local::IsValidImageName(image))
    return InvalidArgument(fmt::format("bad image name '{}'", image));
  if (base_image.empty() || base_image == "host")
    return Conflict(fmt::format(
        "{} runs image host, whose files are the host's own (bound read-only), so it cannot "
        "become an image; commit a session of an imported or built image",
        session_id));
  if (images_->Get(image).ok()) return Conflict(fmt::format("image {} exists already", image));
  ASSIGN_OR_RETURN(local::ImageRecord base, images_->Get(base_image));
  const int64_t t0 = MonotonicMillis();
  // The writable layer is captured as an internal checkpoint — consistent (the session stands
  // still only while its disk is copied, by reflink where the filesystem can) — and then read
  // from a mount of that copy while the session runs on.
  std::string name = ".commit-" + NewId("c").substr(2, 10);
  for (char& c : name) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  if (progress) progress(0.05, "capturing the writable layer");
  ASSIGN_OR_RETURN(CheckpointInfo cp, Checkpoint(session_id, driver_state, name, freeze));
  ScopeGuard drop([&] { (void)DeleteCheckpoint(session_id, name); });
  ASSIGN_OR_RETURN(
      local::DiskPool::Lease lease,
      hardening_.disks->Adopt(fmt::format("{}/{}.img", CheckpointDir(session_id), name)));
  lease.mount.Reset();
  ScopeGuard unmount([&] { (void)local::DiskPool::Keep(std::move(lease.disk)); });
  UniqueFd upper(openat(lease.disk.mount.get(), "upper", O_RDONLY | O_DIRECTORY | O_CLOEXEC));
  if (!upper) return ErrnoError(fmt::format("open the writable layer of {}", session_id), errno);
  local::ImageProgressFn layer_progress = [&](double f, const std::string& m) {
    if (progress) progress(0.1 + 0.85 * f, m);
  };
  ASSIGN_OR_RETURN(local::ImageRecord m,
                   images_->ImportTree(image, owner, upper.get(), base.layers, "commit", session_id,
                                       base.config, layer_progress));
  LOG_INFO("{}: committed as image {} in {} ms (freeze {} ms)", session_id, image,
           MonotonicMillis() - t0, cp.freeze_ms);
  return ImageInfoOf(m);
}

}  // namespace hutch::drivers::local
