#include "sandbox/rootfs.h"

#include <fcntl.h>
#include <linux/mount.h>
#include <net/if.h>
#include <sys/ioctl.h>
#include <sys/mount.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
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
  Fd& operator=(Fd&& other) noexcept {
    if (this != &other) {
      if (fd_ >= 0) close(fd_);
      fd_ = other.fd_;
      other.fd_ = -1;
    }
    return *this;
  }
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

StepError MoveMount(int fd, const std::string& target) {
  if (syscall(SYS_move_mount, fd, "", AT_FDCWD, target.c_str(), MOVE_MOUNT_F_EMPTY_PATH) != 0) {
    return StepFailed("attach mount at " + target);
  }
  return StepOk();
}

// The writable layer: the session's disk (or a tmpfs) at <scaffold>/layer with upper/ and work/.
// Both on one filesystem, as overlayfs requires.
StepError MountLayer(const RootfsSpec& spec, const std::string& layer) {
  StepError e = EnsureDir(layer, 0755);
  if (!e.ok()) return e;
  if (spec.layer_fd >= 0) {
    e = MoveMount(spec.layer_fd, layer);
  } else {
    // Memory-backed: its pages are charged to the session's memory cgroup (docs/security.md).
    std::string data = "mode=0755,size=" + std::to_string(spec.tmpfs_bytes) +
                       ",nr_inodes=" + std::to_string(spec.tmpfs_inodes);
    e = Mount("tmpfs", layer, "tmpfs", MS_NOSUID | MS_NODEV, data.c_str(),
              "mount the tmpfs layer on " + layer);
  }
  if (!e.ok()) return e;
  e = EnsureDir(layer + "/upper", 0755);
  if (!e.ok()) return e;
  return EnsureDir(layer + "/work", 0700);
}

StepError MountOverlay(const RootfsSpec& spec, const std::string& lowers, const std::string& layer,
                       const std::string& root) {
  // Paths on the scaffold: no ',', ':' or '\\' that overlay's option syntax would misread.
  std::string data =
      "lowerdir=" + lowers + ",upperdir=" + layer + "/upper,workdir=" + layer + "/work";
  if (spec.user_namespace) data += ",userxattr";
  return Mount("overlay", root, "overlay", 0, data.c_str(), "mount overlay on " + root);
}

// Opens the directory `target` (absolute, normalized) below `root`, making every missing
// component (0755), following no symlink on the way: a symlink the session left in its layer
// (a stopped session starts again on its files) must not move a mount elsewhere.
StepError OpenDirBelow(const std::string& root, const std::string& target, Fd* out) {
  Fd dir(open(root.c_str(), O_PATH | O_DIRECTORY | O_CLOEXEC));
  if (dir.get() < 0) return StepFailed("open " + root);
  size_t start = 1;
  while (start < target.size()) {
    size_t end = target.find('/', start);
    if (end == std::string::npos) end = target.size();
    std::string part = target.substr(start, end - start);
    start = end + 1;
    if (part.empty()) continue;
    if (mkdirat(dir.get(), part.c_str(), 0755) != 0 && errno != EEXIST)
      return StepFailed("mkdir " + root + target.substr(0, end));
    Fd next(openat(dir.get(), part.c_str(), O_PATH | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC));
    if (next.get() < 0)
      return StepFailed("mount target " + target.substr(0, end) + " is not a directory");
    dir = std::move(next);
  }
  *out = std::move(dir);
  return StepOk();
}

StepError AttachBind(const RootfsMount& bind, const std::string& root) {
  std::string target = root + bind.target;
  struct stat st;
  if (fstat(bind.fd, &st) != 0) return StepFailed("stat the mount for " + bind.target);
  if (S_ISDIR(st.st_mode)) {
    Fd dir(-1);
    StepError e = OpenDirBelow(root, bind.target, &dir);
    if (!e.ok()) return e;
    if (syscall(SYS_move_mount, bind.fd, "", dir.get(), "",
                MOVE_MOUNT_F_EMPTY_PATH | MOVE_MOUNT_T_EMPTY_PATH) != 0)
      return StepFailed("attach mount at " + bind.target);
    return StepOk();
  } else {
    struct stat tst;
    if (lstat(target.c_str(), &tst) != 0) {
      // The file's directory first, made where it is missing (/run/hutch/bin for the agent).
      if (size_t slash = bind.target.rfind('/'); slash != std::string::npos && slash > 0) {
        Fd parent(-1);
        StepError e = OpenDirBelow(root, bind.target.substr(0, slash), &parent);
        if (!e.ok()) return e;
      }
      StepError e = WriteFile(target, "", 0644);
      if (!e.ok()) return e;
    } else if (!S_ISREG(tst.st_mode)) {
      return StepFailed("mount target " + target + " is not a regular file", EINVAL);
    }
  }
  return MoveMount(bind.fd, target);
}

// Masks and read-only binds over the fresh /proc (kMaskedProcPaths, kReadOnlyProcPaths).
StepError HardenProc(const std::string& root) {
  for (const char* p : kMaskedProcPaths) {
    std::string path = root + p;
    struct stat st;
    if (lstat(path.c_str(), &st) != 0) continue;  // not in this kernel
    StepError e =
        S_ISDIR(st.st_mode)
            ? Mount("tmpfs", path, "tmpfs", MS_RDONLY | MS_NOSUID | MS_NODEV | MS_NOEXEC,
                    "size=0,mode=0555", std::string("mask ") + p)
            : Mount("/dev/null", path, nullptr, MS_BIND, nullptr, std::string("mask ") + p);
    if (!e.ok()) return e;
  }
  for (const char* p : kReadOnlyProcPaths) {
    std::string path = root + p;
    struct stat st;
    if (lstat(path.c_str(), &st) != 0) continue;
    StepError e =
        Mount(path.c_str(), path, nullptr, MS_BIND | MS_REC, nullptr, std::string("bind ") + p);
    if (!e.ok()) return e;
    e = Mount(nullptr, path, nullptr,
              MS_BIND | MS_REMOUNT | MS_RDONLY | MS_NOSUID | MS_NODEV | MS_NOEXEC, nullptr,
              std::string("remount ") + p + " read-only");
    if (!e.ok()) return e;
  }
  return StepOk();
}

// /dev: the tmpfs the driver made with the device nodes, a private devpts instance (so the
// sandbox sees only its own terminals) and a tmpfs /dev/shm.
StepError MountDev(int dev_fd, const std::string& dev) {
  StepError e = MoveMount(dev_fd, dev);
  if (!e.ok()) return e;
  // newinstance: a devpts of our own, not the host's ptys. gid=5 is the "tty" group.
  e = Mount("devpts", dev + "/pts", "devpts", MS_NOSUID | MS_NOEXEC,
            "newinstance,ptmxmode=0666,mode=0620,gid=5", "mount devpts on " + dev + "/pts");
  if (!e.ok()) return e;
  return Mount("tmpfs", dev + "/shm", "tmpfs", MS_NOSUID | MS_NODEV, "mode=1777",
               "mount tmpfs on " + dev + "/shm");
}

}  // namespace

StepError MakeMountsPrivate() {
  return Mount(nullptr, "/", nullptr, MS_REC | MS_PRIVATE, nullptr, "make / rprivate");
}

StepError BuildRootfs(const RootfsSpec& spec, std::string* root_out) {
  // The scaffold: private to this mount namespace, gone with the old root after PivotRoot.
  StepError e = Mount("tmpfs", spec.scaffold, "tmpfs", MS_NOSUID | MS_NODEV, "mode=0700,size=64k",
                      "mount the scaffold tmpfs on " + spec.scaffold);
  if (!e.ok()) return e;
  const std::string lower = spec.scaffold + "/lower";
  const std::string layer = spec.scaffold + "/layer";
  const std::string root = spec.scaffold + "/root";
  e = EnsureDir(root, 0755);
  if (!e.ok()) return e;
  if (spec.lower_fds.empty()) return StepFailed("no lower layer", EINVAL);
  // lowerdir lists the top layer first: the image's last layer wins.
  std::string lowers;
  for (size_t i = 0; i < spec.lower_fds.size(); ++i) {
    std::string dir = lower + std::to_string(i);
    e = EnsureDir(dir, 0755);
    if (!e.ok()) return e;
    e = MoveMount(spec.lower_fds[i], dir);
    if (!e.ok()) return e;
    lowers = i == 0 ? dir : dir + ":" + lowers;
  }
  e = MountLayer(spec, layer);
  if (!e.ok()) return e;
  e = MountOverlay(spec, lowers, layer, root);
  if (!e.ok()) return e;
  for (const auto& bind : spec.binds) {
    e = AttachBind(bind, root);
    if (!e.ok()) return e;
  }
  e = EnsureDir(root + "/proc", 0555);
  if (!e.ok()) return e;
  // A proc of this pid namespace: the sandbox sees only its own processes.
  e = Mount("proc", root + "/proc", "proc", MS_NOSUID | MS_NODEV | MS_NOEXEC, nullptr,
            "mount proc on " + root + "/proc");
  if (!e.ok()) return e;
  e = HardenProc(root);
  if (!e.ok()) return e;
  e = EnsureDir(root + "/dev", 0755);
  if (!e.ok()) return e;
  e = MountDev(spec.dev_fd, root + "/dev");
  if (!e.ok()) return e;
  *root_out = root;
  return StepOk();
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
  // An imported image need not have /etc.
  if (mkdir("/etc", 0755) != 0 && errno != EEXIST) return StepFailed("mkdir /etc");
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
