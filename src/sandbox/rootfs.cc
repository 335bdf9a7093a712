#include "sandbox/rootfs.h"

#include <fcntl.h>
#include <net/if.h>
#include <sys/ioctl.h>
#include <sys/mount.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/sysmacros.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

namespace hutch::sandbox {

namespace {

// Small RAII for an fd: this file cannot use common/ (the agent links without it).
class Fd {
 public:
  explicit Fd(int fd) : fd_(fd) {}
  ~Fd() {
    if (fd_ >= 0) close(fd_);
  }
  Fd(const Fd&) = delete;
  Fd& operator=(const Fd&) = delete;
  int get() const { return fd_; }

 private:
  int fd_;
};

StepError Mount(const char* source, const std::string& target, const char* type,
                unsigned long flags, const char* data, const std::string& step) {
  if (mount(source, target.c_str(), type, flags, data) != 0) return StepFailed(step);
  return StepOk();
}

// A directory to mount on: created if missing; an existing symlink (or non-directory) is
// refused, since mount(2) would follow it.
StepError EnsureDir(const std::string& path, mode_t mode) {
  if (mkdir(path.c_str(), mode) == 0) {
    // mkdir applies the umask; the mode is part of the contract (/tmp is 1777).
    if (chmod(path.c_str(), mode) != 0) return StepFailed("chmod " + path);
    return StepOk();
  }
  if (errno != EEXIST) return StepFailed("mkdir " + path);
  struct stat st;
  if (lstat(path.c_str(), &st) != 0) return StepFailed("lstat " + path);
  if (!S_ISDIR(st.st_mode))
    return StepFailed("mount target " + path + " is not a directory", ENOTDIR);
  return StepOk();
}

StepError WriteFile(const std::string& path, const std::string& data, mode_t mode) {
  Fd fd(open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, mode));
  if (fd.get() < 0) return StepFailed("create " + path);
  size_t done = 0;
  while (done < data.size()) {
    ssize_t n = write(fd.get(), data.data() + done, data.size() - done);
    if (n < 0) {
      if (errno == EINTR) continue;
      return StepFailed("write " + path);
    }
    done += static_cast<size_t>(n);
  }
  return StepOk();
}

// Overlay options are a comma-separated list and lowerdir a colon-separated one: paths with
// ',', ':' or '\' would be misread, so they are refused (the driver never makes such paths).
bool SafeOverlayPath(const std::string& p) {
  return !p.empty() && p.find_first_of(",:\\") == std::string::npos;
}

StepError MountOverlay(const RootfsSpec& spec) {
  std::string data = "lowerdir=";
  for (size_t i = 0; i < spec.lower_dirs.size(); ++i) {
    if (!SafeOverlayPath(spec.lower_dirs[i])) return StepFailed("overlay lowerdir", EINVAL);
    if (i) data += ':';
    data += spec.lower_dirs[i];
  }
  if (!SafeOverlayPath(spec.upper_dir) || !SafeOverlayPath(spec.work_dir)) {
    return StepFailed("overlay upperdir/workdir", EINVAL);
  }
  data += ",upperdir=" + spec.upper_dir + ",workdir=" + spec.work_dir;
  return Mount("overlay", spec.root_dir, "overlay", 0, data.c_str(),
               "mount overlay on " + spec.root_dir);
}

StepError BindMount(const RootfsBind& bind, const std::string& root) {
  std::string target = root + bind.target;
  struct stat st;
  if (stat(bind.source.c_str(), &st) != 0) return StepFailed("stat " + bind.source);
  if (S_ISDIR(st.st_mode)) {
    StepError e = EnsureDir(target, 0755);
    if (!e.ok()) return e;
  } else {
    struct stat tst;
    if (lstat(target.c_str(), &tst) != 0) {
      StepError e = WriteFile(target, "", 0644);
      if (!e.ok()) return e;
    } else if (!S_ISREG(tst.st_mode)) {
      return StepFailed("mount target " + target + " is not a regular file", EINVAL);
    }
  }
  // Not MS_REC: submounts of a host directory stay out of the sandbox, so no writable mount
  // can hide below a read-only one.
  StepError e = Mount(bind.source.c_str(), target, nullptr, MS_BIND, nullptr,
                      "bind " + bind.source + " on " + target);
  if (!e.ok() || !bind.read_only) return e;
  // A bind mount takes its flags only from a remount: MS_RDONLY on the first call is ignored.
  return Mount(nullptr, target, nullptr, MS_BIND | MS_REMOUNT | MS_RDONLY | MS_NOSUID | MS_NODEV,
               nullptr, "remount " + target + " read-only");
}

struct DeviceNode {
  const char* name;
  unsigned major;
  unsigned minor;
};
constexpr DeviceNode kDevices[] = {
    {"null", 1, 3},   {"zero", 1, 5},    {"full", 1, 7},
    {"random", 1, 8}, {"urandom", 1, 9}, {"tty", 5, 0},
};

// /dev: a small tmpfs with the few character devices programs expect, a private devpts
// instance (so the sandbox sees only its own terminals) and a tmpfs /dev/shm.
StepError MountDev(const std::string& dev) {
  StepError e = Mount("tmpfs", dev, "tmpfs", MS_NOSUID | MS_NOEXEC, "mode=755,size=64k",
                      "mount tmpfs on " + dev);
  if (!e.ok()) return e;
  for (const auto& d : kDevices) {
    std::string path = dev + "/" + d.name;
    if (mknod(path.c_str(), S_IFCHR | 0666, makedev(d.major, d.minor)) == 0) {
      if (chmod(path.c_str(), 0666) != 0) return StepFailed("chmod " + path);
      continue;
    }
    if (errno != EPERM) return StepFailed("mknod " + path);
    // Without CAP_MKNOD (a user namespace): bind the host's node over an empty file.
    e = WriteFile(path, "", 0666);
    if (!e.ok()) return e;
    e = Mount((std::string("/dev/") + d.name).c_str(), path, nullptr, MS_BIND, nullptr,
              "bind /dev/" + std::string(d.name));
    if (!e.ok()) return e;
  }
  e = EnsureDir(dev + "/pts", 0755);
  if (!e.ok()) return e;
  // newinstance: a devpts of our own, not the host's ptys. gid=5 is the "tty" group.
  e = Mount("devpts", dev + "/pts", "devpts", MS_NOSUID | MS_NOEXEC,
            "newinstance,ptmxmode=0666,mode=0620,gid=5", "mount devpts on " + dev + "/pts");
  if (!e.ok()) return e;
  if (symlink("pts/ptmx", (dev + "/ptmx").c_str()) != 0) return StepFailed("symlink /dev/ptmx");
  e = EnsureDir(dev + "/shm", 01777);
  if (!e.ok()) return e;
  e = Mount("tmpfs", dev + "/shm", "tmpfs", MS_NOSUID | MS_NODEV, "mode=1777",
            "mount tmpfs on " + dev + "/shm");
  if (!e.ok()) return e;
  const char* links[][2] = {{"/proc/self/fd", "fd"},
                            {"/proc/self/fd/0", "stdin"},
                            {"/proc/self/fd/1", "stdout"},
                            {"/proc/self/fd/2", "stderr"}};
  for (const auto& l : links) {
    if (symlink(l[0], (dev + "/" + l[1]).c_str()) != 0) {
      return StepFailed("symlink /dev/" + std::string(l[1]));
    }
  }
  return StepOk();
}

}  // namespace

StepError MakeMountsPrivate() {
  return Mount(nullptr, "/", nullptr, MS_REC | MS_PRIVATE, nullptr, "make / rprivate");
}

StepError BuildRootfs(const RootfsSpec& spec) {
  const std::string& root = spec.root_dir;
  StepError e = MountOverlay(spec);
  if (!e.ok()) return e;
  for (const auto& bind : spec.binds) {
    e = BindMount(bind, root);
    if (!e.ok()) return e;
  }
  e = EnsureDir(root + "/proc", 0555);
  if (!e.ok()) return e;
  // A proc of this pid namespace: the sandbox sees only its own processes.
  e = Mount("proc", root + "/proc", "proc", MS_NOSUID | MS_NODEV | MS_NOEXEC, nullptr,
            "mount proc on " + root + "/proc");
  if (!e.ok()) return e;
  e = EnsureDir(root + "/dev", 0755);
  if (!e.ok()) return e;
  return MountDev(root + "/dev");
}

StepError PivotRoot(const std::string& new_root) {
  if (chdir(new_root.c_str()) != 0) return StepFailed("chdir " + new_root);
  // pivot_root(".", ".") needs no directory for the old root. Afterwards the old root is
  // mounted on top of the new one, both at "/", and our cwd is the new root underneath. The
  // umount2(".", MNT_DETACH) then takes off the topmost mount at "." — the old root, with
  // every host mount below it — leaving the new root as "/". (pivot_root(2) documents this;
  // nsjail's mnt.cc and runc do the same.) MNT_DETACH because the old root is busy: the
  // agent's own binary and fds still point into it.
  if (syscall(SYS_pivot_root, ".", ".") != 0) return StepFailed("pivot_root " + new_root);
  if (umount2(".", MNT_DETACH) != 0) return StepFailed("detach the old root");
  if (chdir("/") != 0) return StepFailed("chdir /");
  return StepOk();
}

StepError SetHostname(const std::string& hostname) {
  if (sethostname(hostname.data(), hostname.size()) != 0) return StepFailed("sethostname");
  StepError e = WriteFile("/etc/hostname", hostname + "\n", 0644);
  if (!e.ok()) return e;
  // A fresh hosts file: the host's would carry the host's own name and addresses.
  std::string hosts = "127.0.0.1\tlocalhost\n127.0.1.1\t" + hostname +
                      "\n::1\tlocalhost ip6-localhost ip6-loopback\nff02::1\tip6-allnodes\n"
                      "ff02::2\tip6-allrouters\n";
  return WriteFile("/etc/hosts", hosts, 0644);
}

StepError BringUpLoopback() {
  Fd sock(socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0));
  if (sock.get() < 0) return StepFailed("socket for lo");
  ifreq ifr;
  memset(&ifr, 0, sizeof ifr);
  strncpy(ifr.ifr_name, "lo", IFNAMSIZ - 1);
  if (ioctl(sock.get(), SIOCGIFFLAGS, &ifr) != 0) return StepFailed("SIOCGIFFLAGS lo");
  // Up already in a namespace the host prepared (nat mode's pool), which the sandbox may not
  // be privileged to change.
  if (ifr.ifr_flags & IFF_UP) return StepOk();
  ifr.ifr_flags |= IFF_UP | IFF_RUNNING;
  if (ioctl(sock.get(), SIOCSIFFLAGS, &ifr) != 0) return StepFailed("SIOCSIFFLAGS lo");
  return StepOk();
}

}  // namespace hutch::sandbox
