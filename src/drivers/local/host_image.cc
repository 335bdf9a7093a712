#include "drivers/local/host_image.h"

#include <dirent.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>

#include <fmt/format.h>

#include "common/ids.h"
#include "common/log.h"
#include "sandbox/fs.h"

namespace hutch::drivers::local {

namespace {

// Top-level names that merged-usr hosts make symlinks into /usr and older hosts keep as real
// directories. Mirrored as symlinks, or bound read-only when real.
const char* const kUsrLinks[] = {"bin", "sbin", "lib", "lib32", "lib64", "libx32"};

struct EmptyDir {
  const char* path;
  mode_t mode;
};
const EmptyDir kDirs[] = {
    {"usr", 0755},  {"proc", 0555}, {"dev", 0755}, {"sys", 0555}, {"tmp", 01777},
    {"root", 0700}, {"home", 0755}, {"run", 0755}, {"var", 0755}, {"var/tmp", 01777},
    {"etc", 0755},  {"mnt", 0755},  {"opt", 0755}, {"srv", 0755},
};

// Paths below allowlisted directories that are still left out.
bool SkipInEtc(const std::string& rel) {
  return rel == "ssl/private";  // TLS private keys
}

}  // namespace

const std::vector<std::string>& HostEtcAllowlist() {
  static const std::vector<std::string> kList = {
      // Users and groups: names for ids (ls -l, whoami). No password hashes: those are in
      // shadow/gshadow, which are never copied.
      "passwd",
      "group",
      // Name resolution and networking databases.
      "hosts",
      "host.conf",
      "nsswitch.conf",
      "resolv.conf",
      "gai.conf",
      "protocols",
      "services",
      "networks",
      "rpc",
      "ethertypes",
      // The dynamic linker's configuration and cache (they describe the bound /usr/lib).
      "ld.so.cache",
      "ld.so.conf",
      "ld.so.conf.d",
      // Debian's alternatives symlinks (editor, awk, python …) point into /usr.
      "alternatives",
      // TLS trust store (ssl/private is skipped).
      "ssl",
      "ca-certificates",
      "ca-certificates.conf",
      // Shell and login environment.
      "profile",
      "profile.d",
      "bash.bashrc",
      "environment",
      "shells",
      "login.defs",
      "inputrc",
      "skel",
      "terminfo",
      // Time, locale, identity of the distribution.
      "localtime",
      "timezone",
      "locale.alias",
      "locale.conf",
      "default/locale",
      "os-release",
      "debian_version",
      "lsb-release",
      "issue",
      // Content types and language runtimes' site configuration.
      "mime.types",
      "mailcap",
      "magic",
      "magic.mime",
      "perl",
      "python3",
      "pip.conf",
      "gitconfig",
      "xattr.conf",
  };
  return kList;
}

Result<HostImage> PrepareHostImage(const std::string& image_dir, const std::string& host_root) {
  HostImage image;
  image.rootfs = image_dir + "/rootfs";
  std::string host = host_root == "/" ? "" : host_root;
  image.binds.push_back({host + "/usr", "/usr", true});
  std::vector<std::string> real_dirs;
  for (const char* name : kUsrLinks) {
    struct stat st;
    std::string path = host + "/" + name;
    if (lstat(path.c_str(), &st) != 0) continue;
    if (S_ISDIR(st.st_mode)) {
      image.binds.push_back({path, std::string("/") + name, true});
      real_dirs.push_back(name);
    }
  }
  if (sandbox::PathExists(image.rootfs)) return image;

  RETURN_IF_ERROR(sandbox::MakeDirs(image_dir, 0755));
  // Leftovers of builds that crashed.
  if (DIR* d = opendir(image_dir.c_str())) {
    while (dirent* e = readdir(d)) {
      std::string_view n = e->d_name;
      if (n.starts_with("rootfs.tmp-")) (void)sandbox::RemoveTree(image_dir + "/" + std::string(n));
    }
    closedir(d);
  }

  std::string tmp = image.rootfs + ".tmp-" + NewId("b");
  RETURN_IF_ERROR(sandbox::MakeDir(tmp, 0755));
  Status st = [&]() -> Status {
    for (const auto& d : kDirs) {
      std::string path = tmp + "/" + d.path;
      if (mkdir(path.c_str(), d.mode) != 0) return ErrnoError("mkdir " + path, errno);
      if (chmod(path.c_str(), d.mode) != 0) return ErrnoError("chmod " + path, errno);
    }
    for (const char* name : kUsrLinks) {
      std::string path = host + "/" + name;
      struct stat lst;
      if (lstat(path.c_str(), &lst) != 0) continue;
      std::string dst = tmp + "/" + name;
      if (S_ISLNK(lst.st_mode)) {
        char target[4096];
        ssize_t n = readlink(path.c_str(), target, sizeof target - 1);
        if (n < 0) return ErrnoError("readlink " + path, errno);
        target[n] = '\0';
        if (symlink(target, dst.c_str()) != 0) return ErrnoError("symlink " + dst, errno);
      } else if (S_ISDIR(lst.st_mode)) {
        if (mkdir(dst.c_str(), 0755) != 0) return ErrnoError("mkdir " + dst, errno);
      }
    }
    for (const auto& rel : HostEtcAllowlist()) {
      std::string src = host + "/etc/" + rel;
      if (!sandbox::PathExists(src)) continue;
      std::string dst = tmp + "/etc/" + rel;
      size_t slash = rel.rfind('/');
      if (slash != std::string::npos) {
        RETURN_IF_ERROR(sandbox::MakeDirs(tmp + "/etc/" + rel.substr(0, slash), 0755));
      }
      RETURN_IF_ERROR(sandbox::CopyTree(
          src, dst, [&](const std::string& sub) { return SkipInEtc(rel + "/" + sub); }));
    }
    // python3.11 and friends: versioned names of an allowlisted entry.
    if (DIR* d = opendir((host + "/etc").c_str())) {
      std::vector<std::string> extra;
      while (dirent* e = readdir(d)) {
        std::string_view n = e->d_name;
        if (n.starts_with("python3.")) extra.emplace_back(n);
      }
      closedir(d);
      for (const auto& n : extra) {
        RETURN_IF_ERROR(sandbox::CopyTree(host + "/etc/" + n, tmp + "/etc/" + n));
      }
    }
    return Status::Ok();
  }();
  if (!st.ok()) {
    (void)sandbox::RemoveTree(tmp);
    return st.WithContext("build image host");
  }
  if (rename(tmp.c_str(), image.rootfs.c_str()) != 0) {
    int err = errno;
    (void)sandbox::RemoveTree(tmp);
    // Another server process built it at the same time: theirs is as good as ours.
    if ((err == EEXIST || err == ENOTEMPTY) && sandbox::PathExists(image.rootfs)) return image;
    return ErrnoError("rename image into " + image.rootfs, err);
  }
  LOG_INFO("built image host at {}", image.rootfs);
  return image;
}

}  // namespace hutch::drivers::local
