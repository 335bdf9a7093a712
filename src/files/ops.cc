#include "files/ops.h"

#include <dirent.h>
#include <fcntl.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <ctime>
#include <memory>
#include <utility>

#include <fmt/format.h>

namespace hutch::files {

namespace {

constexpr size_t kWriteChunk = 1 << 20;
// Deeper trees than this are not removed or listed (each level holds an fd).
constexpr int kMaxDepth = 256;

Entry EntryFromStat(const Root& root, const struct stat& st, std::string name, std::string path) {
  Entry e;
  e.name = std::move(name);
  e.path = std::move(path);
  e.type = TypeOf(st.st_mode);
  e.size = e.type == FileType::kDirectory ? 0 : static_cast<uint64_t>(st.st_size);
  e.mode = st.st_mode & 07777;
  e.uid = InsideId(st.st_uid, root.uid);
  e.gid = InsideId(st.st_gid, root.gid);
  e.mtime_ns = int64_t{st.st_mtim.tv_sec} * 1000000000 + st.st_mtim.tv_nsec;
  return e;
}

std::string ReadLinkAt(int dir_fd, const char* name) {
  char buf[kMaxPath + 1];
  ssize_t n = readlinkat(dir_fd, name, buf, sizeof buf - 1);
  return n < 0 ? std::string() : std::string(buf, static_cast<size_t>(n));
}

}  // namespace

Result<std::vector<std::string>> ReadDirNames(int dir_fd, std::string_view shown) {
  int dup_fd = fcntl(dir_fd, F_DUPFD_CLOEXEC, 0);
  if (dup_fd < 0) return FsError("dup", shown, errno);
  DIR* d = fdopendir(dup_fd);
  if (!d) {
    int err = errno;
    close(dup_fd);
    return FsError("opendir", shown, err);
  }
  std::unique_ptr<DIR, int (*)(DIR*)> guard(d, closedir);
  rewinddir(d);
  std::vector<std::string> names;
  errno = 0;
  while (struct dirent* e = readdir(d)) {
    if (strcmp(e->d_name, ".") != 0 && strcmp(e->d_name, "..") != 0) names.emplace_back(e->d_name);
    errno = 0;
  }
  if (errno != 0) return FsError("readdir", shown, errno);
  std::sort(names.begin(), names.end());
  return names;
}

namespace {

bool IsMountRoot(int fd) {
  struct statx stx;
  if (statx(fd, "", AT_EMPTY_PATH, STATX_BASIC_STATS, &stx) != 0) return false;
  return (stx.stx_attributes_mask & STATX_ATTR_MOUNT_ROOT) &&
         (stx.stx_attributes & STATX_ATTR_MOUNT_ROOT);
}

// Gives a directory the server just made its mode (umask-free) and the sandbox root's ids.
Status FixNewDir(const Root& root, int parent_fd, const std::string& name, uint32_t mode,
                 std::string_view shown) {
  UniqueFd fd(openat(parent_fd, name.c_str(), O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC));
  if (!fd) return FsError("open", shown, errno);
  if (fchown(fd.get(), root.uid, root.gid) != 0) return FsError("chown", shown, errno);
  if (fchmod(fd.get(), mode & 07777) != 0) return FsError("chmod", shown, errno);
  return Status::Ok();
}

Status CheckMode(uint32_t mode) {
  if (mode & ~uint32_t{07777}) return InvalidArgument(fmt::format("mode {:o} is not a mode", mode));
  if (mode & (S_ISUID | S_ISGID))
    return InvalidArgument("setuid and setgid bits are not set through the files API");
  return Status::Ok();
}

Status RemoveTreeAt(int parent_fd, const std::string& name, const std::string& shown, int depth) {
  if (depth > kMaxDepth)
    return Conflict(fmt::format("{}: deeper than {} levels; not removed", shown, kMaxDepth));
  UniqueFd fd(openat(parent_fd, name.c_str(), O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC));
  if (!fd) {
    // Replaced by a file or symlink meanwhile: remove that.
    if (errno == ENOTDIR || errno == ELOOP) {
      if (unlinkat(parent_fd, name.c_str(), 0) != 0 && errno != ENOENT)
        return FsError("remove", shown, errno);
      return Status::Ok();
    }
    if (errno == ENOENT) return Status::Ok();
    return FsError("open", shown, errno);
  }
  if (IsMountRoot(fd.get()))
    return Conflict(fmt::format("{}: is a mount point; it is not removed", shown));
  RETURN_IF_ERROR(CheckServedFs(fd.get(), shown));
  ASSIGN_OR_RETURN(std::vector<std::string> names, ReadDirNames(fd.get(), shown));
  for (const std::string& child : names) {
    std::string child_shown = JoinPath(shown, child);
    struct stat st;
    if (fstatat(fd.get(), child.c_str(), &st, AT_SYMLINK_NOFOLLOW) != 0) {
      if (errno == ENOENT) continue;
      return FsError("stat", child_shown, errno);
    }
    if (S_ISDIR(st.st_mode)) {
      RETURN_IF_ERROR(RemoveTreeAt(fd.get(), child, child_shown, depth + 1));
    } else if (unlinkat(fd.get(), child.c_str(), 0) != 0 && errno != ENOENT) {
      return FsError("remove", child_shown, errno);
    }
  }
  if (unlinkat(parent_fd, name.c_str(), AT_REMOVEDIR) != 0 && errno != ENOENT)
    return FsError("remove", shown, errno);
  return Status::Ok();
}

Status ListInto(const Root& root, int dir_fd, const std::string& shown, int depth,
                size_t max_entries, Listing* out) {
  ASSIGN_OR_RETURN(std::vector<std::string> names, ReadDirNames(dir_fd, shown));
  for (const std::string& name : names) {
    if (out->entries.size() >= max_entries) {
      out->truncated = true;
      return Status::Ok();
    }
    std::string child_shown = JoinPath(shown, name);
    Result<Entry> e = StatAt(root, dir_fd, name, child_shown);
    if (!e.ok()) {
      if (e.status().code() == Code::kNotFound) continue;  // removed meanwhile
      return e.status();
    }
    bool is_dir = e->type == FileType::kDirectory;
    out->entries.push_back(std::move(*e));
    if (!is_dir || depth <= 1) continue;
    UniqueFd sub(openat(dir_fd, name.c_str(), O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC));
    if (!sub) continue;  // replaced or unreadable: listed, not descended into
    if (!CheckServedFs(sub.get(), child_shown).ok()) continue;
    RETURN_IF_ERROR(ListInto(root, sub.get(), child_shown, depth - 1, max_entries, out));
  }
  return Status::Ok();
}

}  // namespace

std::string_view ToString(FileType t) {
  switch (t) {
    case FileType::kFile:
      return "file";
    case FileType::kDirectory:
      return "directory";
    case FileType::kSymlink:
      return "symlink";
    case FileType::kFifo:
      return "fifo";
    case FileType::kSocket:
      return "socket";
    case FileType::kCharDevice:
      return "char_device";
    case FileType::kBlockDevice:
      return "block_device";
  }
  return "file";
}

FileType TypeOf(mode_t mode) {
  if (S_ISDIR(mode)) return FileType::kDirectory;
  if (S_ISLNK(mode)) return FileType::kSymlink;
  if (S_ISFIFO(mode)) return FileType::kFifo;
  if (S_ISSOCK(mode)) return FileType::kSocket;
  if (S_ISCHR(mode)) return FileType::kCharDevice;
  if (S_ISBLK(mode)) return FileType::kBlockDevice;
  return FileType::kFile;
}

Result<Entry> StatAt(const Root& root, int dir_fd, const std::string& name,
                     const std::string& shown_path) {
  struct stat st;
  if (fstatat(dir_fd, name.c_str(), &st, AT_SYMLINK_NOFOLLOW) != 0)
    return FsError("stat", shown_path, errno);
  Entry e = EntryFromStat(root, st, name, shown_path);
  if (e.type == FileType::kSymlink) e.target = ReadLinkAt(dir_fd, name.c_str());
  return e;
}

Result<Entry> Stat(const Root& root, std::string_view path) {
  RETURN_IF_ERROR(CheckPath(path));
  std::string shown = ShownPath(path);
  ASSIGN_OR_RETURN(UniqueFd fd, OpenInRoot(root.fd.get(), path, O_PATH | O_NOFOLLOW));
  struct stat st;
  if (fstatat(fd.get(), "", &st, AT_EMPTY_PATH) != 0) return FsError("stat", shown, errno);
  std::string name = shown == "/" ? "/" : shown.substr(shown.rfind('/') + 1);
  Entry e = EntryFromStat(root, st, name, shown);
  if (e.type == FileType::kSymlink) e.target = ReadLinkAt(fd.get(), "");
  return e;
}

Result<Listing> List(const Root& root, std::string_view path, int depth, size_t max_entries) {
  RETURN_IF_ERROR(CheckPath(path));
  std::string shown = ShownPath(path);
  ASSIGN_OR_RETURN(UniqueFd fd, OpenInRoot(root.fd.get(), path, O_RDONLY | O_DIRECTORY));
  Listing out;
  RETURN_IF_ERROR(
      ListInto(root, fd.get(), shown, std::clamp(depth, 1, kMaxDepth), max_entries, &out));
  return out;
}

Result<OpenedFile> OpenForRead(const Root& root, std::string_view path) {
  RETURN_IF_ERROR(CheckPath(path));
  std::string shown = ShownPath(path);
  // O_PATH first: opening a device or fifo for reading, as host root, could block or act.
  ASSIGN_OR_RETURN(UniqueFd pfd, OpenInRoot(root.fd.get(), path, O_PATH));
  struct stat st;
  if (fstat(pfd.get(), &st) != 0) return FsError("stat", shown, errno);
  if (S_ISDIR(st.st_mode)) return Conflict(fmt::format("{}: is a directory", shown));
  if (!S_ISREG(st.st_mode))
    return InvalidArgument(
        fmt::format("{}: is a {}, not a regular file", shown, ToString(TypeOf(st.st_mode))));
  // Reopening the fd we hold through our own /proc re-resolves nothing inside the sandbox.
  std::string self = fmt::format("/proc/self/fd/{}", pfd.get());
  UniqueFd fd(open(self.c_str(), O_RDONLY | O_CLOEXEC | O_NOCTTY));
  if (!fd) return FsError("open", shown, errno);
  if (fstat(fd.get(), &st) != 0) return FsError("stat", shown, errno);
  return OpenedFile{std::move(fd), static_cast<uint64_t>(st.st_size)};
}

Result<UniqueFd> OpenDir(const Root& root, std::string_view path, bool create) {
  RETURN_IF_ERROR(CheckPath(path));
  Result<UniqueFd> fd = OpenInRoot(root.fd.get(), path, O_PATH | O_DIRECTORY);
  if (fd.ok() || !create || fd.status().code() != Code::kNotFound) return fd;
  // Walk down from the root, creating what is missing. Each prefix is resolved afresh by the
  // kernel, and each mkdirat happens in the fd of the prefix before it.
  ActAsSandboxRoot as_root(root);
  ASSIGN_OR_RETURN(UniqueFd cur, OpenInRoot(root.fd.get(), "/", O_PATH | O_DIRECTORY));
  std::string prefix = "/";
  size_t start = 0;
  std::string p(path);
  while (start < p.size()) {
    size_t slash = p.find('/', start);
    if (slash == std::string::npos) slash = p.size();
    std::string comp = p.substr(start, slash - start);
    start = slash + 1;
    if (comp.empty() || comp == ".") continue;
    prefix = comp == ".." ? prefix + "/.." : JoinPath(prefix, comp);
    Result<UniqueFd> next = OpenInRoot(root.fd.get(), prefix, O_PATH | O_DIRECTORY);
    if (!next.ok() && next.status().code() == Code::kNotFound && comp != "..") {
      if (mkdirat(cur.get(), comp.c_str(), 0755) == 0) {
        RETURN_IF_ERROR(FixNewDir(root, cur.get(), comp, 0755, prefix));
      } else if (errno != EEXIST) {
        return FsError("mkdir", prefix, errno);
      }
      next = OpenInRoot(root.fd.get(), prefix, O_PATH | O_DIRECTORY);
    }
    if (!next.ok()) return next.status();
    cur = std::move(*next);
  }
  return cur;
}

Result<PendingWrite> BeginWrite(const Root& root, std::string_view path, const WriteOptions& opts) {
  if (opts.mode) RETURN_IF_ERROR(CheckMode(*opts.mode));
  ASSIGN_OR_RETURN(ParentAndName pn, SplitParent(path));
  PendingWrite w;
  w.shown_ = ShownPath(path);
  ASSIGN_OR_RETURN(w.parent_, OpenDir(root, pn.parent, opts.parents));
  w.name_ = pn.name;
  struct stat st;
  bool exists = fstatat(w.parent_.get(), w.name_.c_str(), &st, AT_SYMLINK_NOFOLLOW) == 0;
  if (exists && S_ISDIR(st.st_mode)) return Conflict(fmt::format("{}: is a directory", w.shown_));
  bool replaces_file = exists && S_ISREG(st.st_mode);
  w.mode_ = opts.mode ? *opts.mode : replaces_file ? (st.st_mode & 01777) : 0644;
  uint32_t uid = replaces_file ? st.st_uid : root.uid;
  uint32_t gid = replaces_file ? st.st_gid : root.gid;
  w.created_ = !exists;
  w.root_uid_ = root.uid;
  w.root_gid_ = root.gid;
  ActAsSandboxRoot as_root(root);

  // The temporary file lives beside the target (same filesystem, so the rename is atomic) under
  // a name nobody else uses; it is never reached through a path again, only through `parent`.
  uint64_t rnd = 0;
  if (getrandom(&rnd, sizeof rnd, 0) != sizeof rnd) rnd = static_cast<uint64_t>(getpid()) ^ rnd;
  w.tmp_ = fmt::format(".{}.hutch-{:016x}", pn.name.substr(0, 200), rnd);
  w.out_.Reset(openat(w.parent_.get(), w.tmp_.c_str(),
                      O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600));
  if (!w.out_) return FsError("create", w.shown_, errno);
  if (fchown(w.out_.get(), uid, gid) != 0) {
    int err = errno;
    w.Abandon();
    return FsError("chown", w.shown_, err);
  }
  return w;
}

namespace {

// Acts as the sandbox's root with the ids a PendingWrite kept.
Root IdsOf(uint32_t uid, uint32_t gid) {
  Root ids;
  ids.uid = uid;
  ids.gid = gid;
  return ids;
}

}  // namespace

void PendingWrite::Abandon() {
  if (parent_ && !tmp_.empty()) {
    ActAsSandboxRoot as_root(IdsOf(root_uid_, root_gid_));
    unlinkat(parent_.get(), tmp_.c_str(), 0);
  }
  tmp_.clear();
  out_.Reset();
}

PendingWrite::~PendingWrite() { Abandon(); }

PendingWrite::PendingWrite(PendingWrite&& o) noexcept
    : parent_(std::move(o.parent_)),
      out_(std::move(o.out_)),
      name_(std::move(o.name_)),
      tmp_(std::exchange(o.tmp_, std::string())),
      shown_(std::move(o.shown_)),
      mode_(o.mode_),
      created_(o.created_),
      root_uid_(o.root_uid_),
      root_gid_(o.root_gid_) {}

Status PendingWrite::Append(std::string_view data) {
  size_t done = 0;
  while (done < data.size()) {
    ssize_t w = write(out_.get(), data.data() + done, data.size() - done);
    if (w < 0) {
      if (errno == EINTR) continue;
      return FsError("write", shown_, errno);
    }
    done += static_cast<size_t>(w);
  }
  return Status::Ok();
}

Result<WriteResult> PendingWrite::Commit() {
  ActAsSandboxRoot as_root(IdsOf(root_uid_, root_gid_));
  WriteResult result;
  result.created = created_;
  struct stat st;
  if (fstat(out_.get(), &st) != 0) return FsError("stat", shown_, errno);
  result.bytes = static_cast<uint64_t>(st.st_size);
  // After fchown, which clears setuid bits.
  if (fchmod(out_.get(), mode_) != 0) return FsError("chmod", shown_, errno);
  // close() reports delayed write errors (ENOSPC on some filesystems, quota on NFS).
  if (close(out_.Release()) != 0) return FsError("write", shown_, errno);
  if (renameat(parent_.get(), tmp_.c_str(), parent_.get(), name_.c_str()) != 0)
    return FsError("rename into place", shown_, errno);
  tmp_.clear();
  return result;
}

Result<WriteResult> WriteFile(const Root& root, std::string_view path, const WriteOptions& opts,
                              const ReadFn& read) {
  ASSIGN_OR_RETURN(PendingWrite w, BeginWrite(root, path, opts));
  std::unique_ptr<char[]> buf(new char[kWriteChunk]);
  for (;;) {
    ASSIGN_OR_RETURN(size_t n, read(buf.get(), kWriteChunk));
    if (n == 0) break;
    RETURN_IF_ERROR(w.Append(std::string_view(buf.get(), n)));
  }
  return w.Commit();
}

Status Remove(const Root& root, std::string_view path, bool recursive) {
  ASSIGN_OR_RETURN(ParentAndName pn, SplitParent(path));
  std::string shown = ShownPath(path);
  ASSIGN_OR_RETURN(UniqueFd parent, OpenDir(root, pn.parent, false));
  struct stat st;
  if (fstatat(parent.get(), pn.name.c_str(), &st, AT_SYMLINK_NOFOLLOW) != 0)
    return FsError("stat", shown, errno);
  if (!S_ISDIR(st.st_mode)) {
    if (unlinkat(parent.get(), pn.name.c_str(), 0) != 0) return FsError("remove", shown, errno);
    return Status::Ok();
  }
  if (!recursive) {
    if (unlinkat(parent.get(), pn.name.c_str(), AT_REMOVEDIR) == 0) return Status::Ok();
    if (errno == ENOTEMPTY || errno == EEXIST)
      return Conflict(
          fmt::format("{}: directory is not empty; pass recursive=true to remove it all", shown));
    return FsError("remove", shown, errno);
  }
  return RemoveTreeAt(parent.get(), pn.name, shown, 0);
}

Status MakeDir(const Root& root, std::string_view path, uint32_t mode, bool parents) {
  RETURN_IF_ERROR(CheckMode(mode));
  ASSIGN_OR_RETURN(ParentAndName pn, SplitParent(path));
  std::string shown = ShownPath(path);
  ASSIGN_OR_RETURN(UniqueFd parent, OpenDir(root, pn.parent, parents));
  ActAsSandboxRoot as_root(root);
  if (mkdirat(parent.get(), pn.name.c_str(), 0700) != 0) {
    int err = errno;
    struct stat st;
    if (err == EEXIST && parents &&
        fstatat(parent.get(), pn.name.c_str(), &st, AT_SYMLINK_NOFOLLOW) == 0 &&
        S_ISDIR(st.st_mode))
      return Status::Ok();
    if (err == EEXIST) return Conflict(fmt::format("{}: exists already", shown));
    return FsError("mkdir", shown, err);
  }
  return FixNewDir(root, parent.get(), pn.name, mode, shown);
}

Status Move(const Root& root, std::string_view from, std::string_view to, bool overwrite) {
  // A rename creates a name in the target directory, which the sandbox's filesystem checks.
  ActAsSandboxRoot as_root(root);
  ASSIGN_OR_RETURN(ParentAndName f, SplitParent(from));
  ASSIGN_OR_RETURN(ParentAndName t, SplitParent(to));
  ASSIGN_OR_RETURN(UniqueFd from_dir, OpenDir(root, f.parent, false));
  ASSIGN_OR_RETURN(UniqueFd to_dir, OpenDir(root, t.parent, false));
  if (renameat2(from_dir.get(), f.name.c_str(), to_dir.get(), t.name.c_str(),
                overwrite ? 0 : RENAME_NOREPLACE) != 0) {
    int err = errno;
    if (err == EEXIST)
      return Conflict(
          fmt::format("{}: exists already; pass overwrite=true to replace it", ShownPath(to)));
    if (err == ENOENT) return FsError("move", ShownPath(from), err);
    return FsError(fmt::format("move {} to", ShownPath(from)), ShownPath(to), err);
  }
  return Status::Ok();
}

}  // namespace hutch::files
