#include "sandbox/fs.h"

#include <dirent.h>
#include <fcntl.h>
#include <sys/sendfile.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <vector>

#include <fmt/format.h>

#include "common/unique_fd.h"

namespace hutch::sandbox {

Result<std::string> ReadFileToString(const std::string& path) {
  UniqueFd fd(open(path.c_str(), O_RDONLY | O_CLOEXEC));
  if (!fd) return ErrnoError("open " + path, errno);
  std::string out;
  char buf[16384];
  for (;;) {
    ssize_t n = read(fd.get(), buf, sizeof buf);
    if (n < 0) {
      if (errno == EINTR) continue;
      return ErrnoError("read " + path, errno);
    }
    if (n == 0) break;
    out.append(buf, static_cast<size_t>(n));
  }
  return out;
}

Status WriteExistingFile(const std::string& path, std::string_view data) {
  UniqueFd fd(open(path.c_str(), O_WRONLY | O_CLOEXEC));
  if (!fd) return ErrnoError("open " + path, errno);
  ssize_t n = write(fd.get(), data.data(), data.size());
  if (n < 0) return ErrnoError(fmt::format("write {} to {}", data, path), errno);
  if (static_cast<size_t>(n) != data.size()) {
    return Internal(fmt::format("write {} to {}: short write", data, path));
  }
  return Status::Ok();
}

Status WriteNewFile(const std::string& path, std::string_view data, mode_t mode) {
  UniqueFd fd(open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, mode));
  if (!fd) return ErrnoError("create " + path, errno);
  size_t done = 0;
  while (done < data.size()) {
    ssize_t n = write(fd.get(), data.data() + done, data.size() - done);
    if (n < 0) {
      if (errno == EINTR) continue;
      return ErrnoError("write " + path, errno);
    }
    done += static_cast<size_t>(n);
  }
  return Status::Ok();
}

Status MakeDir(const std::string& path, mode_t mode) {
  if (mkdir(path.c_str(), mode) == 0) return Status::Ok();
  int err = errno;
  struct stat st;
  if (err == EEXIST && stat(path.c_str(), &st) == 0 && S_ISDIR(st.st_mode)) return Status::Ok();
  return ErrnoError("mkdir " + path, err);
}

Status MakeDirs(const std::string& path, mode_t mode) {
  for (size_t pos = 1; pos <= path.size(); ++pos) {
    if (pos == path.size() || path[pos] == '/') {
      std::string prefix = path.substr(0, pos);
      if (prefix.empty() || prefix.back() == '/') continue;
      RETURN_IF_ERROR(MakeDir(prefix, mode));
    }
  }
  return Status::Ok();
}

bool PathExists(const std::string& path) {
  struct stat st;
  return lstat(path.c_str(), &st) == 0;
}

namespace {

// Empties the directory open as `dirfd`. `path` is only for error messages.
Status RemoveContents(int dirfd, const std::string& path) {
  int dupfd = fcntl(dirfd, F_DUPFD_CLOEXEC, 0);
  if (dupfd < 0) return ErrnoError("dup " + path, errno);
  DIR* dir = fdopendir(dupfd);
  if (!dir) {
    int err = errno;
    close(dupfd);
    return ErrnoError("fdopendir " + path, err);
  }
  Status status;
  // Collect names first: unlinking while readdir walks the same directory is allowed but
  // makes the walk's results depend on the filesystem.
  std::vector<std::pair<std::string, unsigned char>> entries;
  errno = 0;
  while (dirent* e = readdir(dir)) {
    std::string_view name = e->d_name;
    if (name == "." || name == "..") continue;
    entries.emplace_back(std::string(name), e->d_type);
  }
  int read_err = errno;
  closedir(dir);
  if (read_err != 0) return ErrnoError("readdir " + path, read_err);

  for (const auto& [name, type] : entries) {
    std::string child = path + "/" + name;
    if (type != DT_DIR) {
      if (unlinkat(dirfd, name.c_str(), 0) == 0) continue;
      if (errno == ENOENT) continue;
      if (errno != EISDIR) {  // EISDIR: d_type was DT_UNKNOWN and it is a directory
        return ErrnoError("unlink " + child, errno);
      }
    }
    UniqueFd sub(openat(dirfd, name.c_str(), O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC));
    if (!sub) {
      if (errno == ENOENT) continue;
      // ENOTDIR/ELOOP: not a directory after all (a symlink): unlink it.
      if ((errno == ENOTDIR || errno == ELOOP) && unlinkat(dirfd, name.c_str(), 0) == 0) continue;
      return ErrnoError("open " + child, errno);
    }
    RETURN_IF_ERROR(RemoveContents(sub.get(), child));
    sub.Reset();
    if (unlinkat(dirfd, name.c_str(), AT_REMOVEDIR) != 0 && errno != ENOENT) {
      return ErrnoError("rmdir " + child, errno);
    }
  }
  return Status::Ok();
}

}  // namespace

Status RemoveDirContents(int dirfd, const std::string& what) { return RemoveContents(dirfd, what); }

Status RemoveTree(const std::string& path) {
  UniqueFd fd(open(path.c_str(), O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC));
  if (!fd) {
    if (errno == ENOENT) return Status::Ok();
    if (errno == ENOTDIR || errno == ELOOP) {
      if (unlink(path.c_str()) == 0 || errno == ENOENT) return Status::Ok();
      return ErrnoError("unlink " + path, errno);
    }
    return ErrnoError("open " + path, errno);
  }
  RETURN_IF_ERROR(RemoveContents(fd.get(), path));
  fd.Reset();
  if (rmdir(path.c_str()) != 0 && errno != ENOENT) return ErrnoError("rmdir " + path, errno);
  return Status::Ok();
}

namespace {

Status CopyFileContents(const std::string& src, const std::string& dst, const struct stat& st) {
  UniqueFd in(open(src.c_str(), O_RDONLY | O_CLOEXEC | O_NOFOLLOW));
  if (!in) return ErrnoError("open " + src, errno);
  UniqueFd out(open(dst.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, st.st_mode & 07777));
  if (!out) return ErrnoError("create " + dst, errno);
  off_t left = st.st_size;
  while (left > 0) {
    ssize_t n = sendfile(out.get(), in.get(), nullptr, static_cast<size_t>(left));
    if (n < 0) {
      if (errno == EINTR) continue;
      return ErrnoError("copy " + src, errno);
    }
    if (n == 0) break;  // the file shrank while we copied it
    left -= n;
  }
  if (fchown(out.get(), st.st_uid, st.st_gid) != 0) return ErrnoError("chown " + dst, errno);
  if (fchmod(out.get(), st.st_mode & 07777) != 0) return ErrnoError("chmod " + dst, errno);
  timespec times[2] = {st.st_atim, st.st_mtim};
  if (futimens(out.get(), times) != 0) return ErrnoError("utimens " + dst, errno);
  return Status::Ok();
}

Status CopyTreeAt(const std::string& src, const std::string& dst, const std::string& rel,
                  const std::function<bool(const std::string&)>& skip) {
  if (skip && !rel.empty() && skip(rel)) return Status::Ok();
  struct stat st;
  if (lstat(src.c_str(), &st) != 0) return ErrnoError("lstat " + src, errno);
  timespec times[2] = {st.st_atim, st.st_mtim};
  if (S_ISLNK(st.st_mode)) {
    std::string target(static_cast<size_t>(st.st_size) + 1, '\0');
    ssize_t n = readlink(src.c_str(), target.data(), target.size());
    if (n < 0) return ErrnoError("readlink " + src, errno);
    target.resize(static_cast<size_t>(n));
    if (symlink(target.c_str(), dst.c_str()) != 0) return ErrnoError("symlink " + dst, errno);
    if (lchown(dst.c_str(), st.st_uid, st.st_gid) != 0) return ErrnoError("chown " + dst, errno);
    utimensat(AT_FDCWD, dst.c_str(), times, AT_SYMLINK_NOFOLLOW);
    return Status::Ok();
  }
  if (S_ISREG(st.st_mode)) return CopyFileContents(src, dst, st);
  if (!S_ISDIR(st.st_mode)) return Status::Ok();  // sockets, fifos, devices: not in an image

  if (mkdir(dst.c_str(), 0700) != 0) return ErrnoError("mkdir " + dst, errno);
  DIR* dir = opendir(src.c_str());
  if (!dir) return ErrnoError("opendir " + src, errno);
  std::vector<std::string> names;
  while (dirent* e = readdir(dir)) {
    std::string_view name = e->d_name;
    if (name != "." && name != "..") names.emplace_back(name);
  }
  closedir(dir);
  for (const auto& name : names) {
    RETURN_IF_ERROR(CopyTreeAt(src + "/" + name, dst + "/" + name,
                               rel.empty() ? name : rel + "/" + name, skip));
  }
  if (chown(dst.c_str(), st.st_uid, st.st_gid) != 0) return ErrnoError("chown " + dst, errno);
  if (chmod(dst.c_str(), st.st_mode & 07777) != 0) return ErrnoError("chmod " + dst, errno);
  utimensat(AT_FDCWD, dst.c_str(), times, 0);
  return Status::Ok();
}

}  // namespace

Status CopyTree(const std::string& src, const std::string& dst,
                const std::function<bool(const std::string&)>& skip) {
  return CopyTreeAt(src, dst, "", skip);
}

}  // namespace hutch::sandbox
