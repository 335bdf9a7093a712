#include "files/archive.h"

#include <fcntl.h>
#include <linux/openat2.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include <fmt/format.h>

#include "files/ops.h"

namespace hutch::files {

namespace {

// Directory levels TreeTar descends; deeper directories are archived empty.
constexpr size_t kMaxTarDepth = 256;
constexpr size_t kReadChunk = 1 << 20;

TarEntry EntryFor(const Root& root, const struct stat& st, std::string path) {
  TarEntry e;
  e.path = std::move(path);
  e.mode = st.st_mode & 07777;
  e.uid = InsideId(st.st_uid, root.uid);
  e.gid = InsideId(st.st_gid, root.gid);
  e.mtime = st.st_mtim.tv_sec;
  return e;
}

// An archive entry's name as a path below the extraction directory: "./a//b" → "a/b".
// Absolute names and ".." components are refused: such an entry is an attack or a mistake.
Result<std::string> CleanEntryPath(std::string_view raw) {
  if (raw.find('\0') != std::string_view::npos)
    return InvalidArgument("archive entry name contains a NUL byte");
  if (!raw.empty() && raw.front() == '/')
    return InvalidArgument(fmt::format("archive entry '{}' is absolute; refused", raw));
  std::string out;
  size_t start = 0;
  while (start <= raw.size()) {
    size_t slash = raw.find('/', start);
    if (slash == std::string_view::npos) slash = raw.size();
    std::string_view comp = raw.substr(start, slash - start);
    start = slash + 1;
    if (comp.empty() || comp == ".") continue;
    if (comp == "..")
      return InvalidArgument(
          fmt::format("archive entry '{}' climbs out with '..'; refused", raw.substr(0, 200)));
    if (!out.empty()) out += '/';
    out += comp;
  }
  if (!out.empty()) RETURN_IF_ERROR(CheckPath(out));
  return out;
}

Status WriteAll(int fd, std::string_view data, std::string_view shown) {
  while (!data.empty()) {
    ssize_t n = write(fd, data.data(), data.size());
    if (n < 0) {
      if (errno == EINTR) continue;
      return FsError("write", shown, errno);
    }
    data.remove_prefix(static_cast<size_t>(n));
  }
  return Status::Ok();
}

}  // namespace

struct TreeTar::Frame {
  UniqueFd dir;
  std::vector<std::string> names;
  size_t next = 0;
  std::string prefix;  // archive path of this directory ("" for the root)
};

TreeTar::TreeTar(const Root& root) : root_(root) {}
TreeTar::~TreeTar() = default;

Result<std::unique_ptr<TreeTar>> TreeTar::Open(const Root& root, std::string_view path) {
  RETURN_IF_ERROR(CheckPath(path));
  std::string shown = ShownPath(path);
  ASSIGN_OR_RETURN(UniqueFd pfd, OpenInRoot(root.fd.get(), path, O_PATH));
  struct stat st;
  if (fstat(pfd.get(), &st) != 0) return FsError("stat", shown, errno);
  std::unique_ptr<TreeTar> t(new TreeTar(root));
  std::string prefix = shown == "/" ? "" : shown.substr(shown.rfind('/') + 1);
  if (S_ISDIR(st.st_mode)) {
    // Opening "." from the O_PATH fd turns it into a readable one without a second lookup.
    UniqueFd dir(openat(pfd.get(), ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC));
    if (!dir) return FsError("open", shown, errno);
    auto frame = std::make_unique<Frame>();
    ASSIGN_OR_RETURN(frame->names, ReadDirNames(dir.get(), shown));
    frame->dir = std::move(dir);
    frame->prefix = prefix;
    if (!prefix.empty()) {
      TarEntry e = EntryFor(root, st, prefix);
      e.type = '5';
      t->single_ = EncodeTarHeader(e);
      t->entries_++;
    }
    t->stack_.push_back(std::move(frame));
    return t;
  }
  if (!S_ISREG(st.st_mode))
    return InvalidArgument(fmt::format("{}: is a {}; only files and directories are archived",
                                       shown, ToString(TypeOf(st.st_mode))));
  std::string self = fmt::format("/proc/self/fd/{}", pfd.get());
  UniqueFd fd(open(self.c_str(), O_RDONLY | O_CLOEXEC | O_NOCTTY));
  if (!fd) return FsError("open", shown, errno);
  if (fstat(fd.get(), &st) != 0) return FsError("stat", shown, errno);
  TarEntry e = EntryFor(root, st, prefix);
  e.type = '0';
  e.size = static_cast<uint64_t>(st.st_size);
  t->single_ = EncodeTarHeader(e);
  t->file_ = std::move(fd);
  t->file_left_ = t->file_size_ = e.size;
  t->entries_++;
  return t;
}

Status TreeTar::EmitFileData(std::string* out, size_t max_bytes) {
  while (file_left_ > 0 && out->size() < max_bytes) {
    size_t want =
        static_cast<size_t>(std::min<uint64_t>({file_left_, kReadChunk, max_bytes - out->size()}));
    size_t old = out->size();
    out->resize(old + want);
    ssize_t n = read(file_.get(), out->data() + old, want);
    if (n < 0 && errno == EINTR) {
      out->resize(old);
      continue;
    }
    if (n < 0) {
      out->resize(old);
      return FsError("read", "a file being archived", errno);
    }
    if (n == 0) {
      // The file shrank since its header was written: the header's size is what the archive
      // promised, so pad with zeros.
      memset(out->data() + old, 0, want);
      n = static_cast<ssize_t>(want);
    }
    out->resize(old + static_cast<size_t>(n));
    file_left_ -= static_cast<uint64_t>(n);
  }
  if (file_left_ == 0) {
    out->append(TarPadding(file_size_), '\0');
    file_.Reset();
  }
  return Status::Ok();
}

Status TreeTar::EmitEntry(Frame& f, const std::string& name, std::string* out) {
  struct stat st;
  if (fstatat(f.dir.get(), name.c_str(), &st, AT_SYMLINK_NOFOLLOW) != 0) return Status::Ok();
  std::string path = f.prefix.empty() ? name : f.prefix + "/" + name;
  TarEntry e = EntryFor(root_, st, path);
  if (S_ISDIR(st.st_mode)) {
    UniqueFd sub(
        openat(f.dir.get(), name.c_str(), O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC));
    if (!sub || !CheckServedFs(sub.get(), path).ok()) return Status::Ok();
    e.type = '5';
    *out += EncodeTarHeader(e);
    ++entries_;
    if (stack_.size() >= kMaxTarDepth) return Status::Ok();
    auto frame = std::make_unique<Frame>();
    auto names = ReadDirNames(sub.get(), path);
    if (names.ok()) frame->names = std::move(*names);
    frame->dir = std::move(sub);
    frame->prefix = path;
    stack_.push_back(std::move(frame));
  } else if (S_ISREG(st.st_mode)) {
    // O_NONBLOCK: had the name been swapped for a fifo since the stat, the open cannot hang;
    // the fstat of the opened fd is what counts.
    UniqueFd fd(openat(f.dir.get(), name.c_str(),
                       O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_NOCTTY | O_CLOEXEC));
    if (!fd || fstat(fd.get(), &st) != 0 || !S_ISREG(st.st_mode)) return Status::Ok();
    e = EntryFor(root_, st, path);
    e.type = '0';
    e.size = static_cast<uint64_t>(st.st_size);
    *out += EncodeTarHeader(e);
    ++entries_;
    file_ = std::move(fd);
    file_left_ = file_size_ = e.size;
  } else if (S_ISLNK(st.st_mode)) {
    char buf[kMaxPath + 1];
    ssize_t n = readlinkat(f.dir.get(), name.c_str(), buf, sizeof buf - 1);
    if (n < 0) return Status::Ok();
    e.type = '2';
    e.link.assign(buf, static_cast<size_t>(n));
    *out += EncodeTarHeader(e);
    ++entries_;
  }
  // Fifos, sockets and devices are not archived.
  return Status::Ok();
}

Result<std::optional<std::string>> TreeTar::Next(size_t max_bytes) {
  if (done_) return std::optional<std::string>();
  std::string out;
  if (single_) {
    out = std::move(*single_);
    single_.reset();
  }
  while (out.size() < max_bytes && !done_) {
    if (file_) {
      RETURN_IF_ERROR(EmitFileData(&out, max_bytes));
      continue;
    }
    if (stack_.empty()) {
      out += TarTrailer();
      done_ = true;
      break;
    }
    Frame& f = *stack_.back();
    if (f.next >= f.names.size()) {
      stack_.pop_back();
      continue;
    }
    std::string name = f.names[f.next++];
    RETURN_IF_ERROR(EmitEntry(f, name, &out));
  }
  return std::optional<std::string>(std::move(out));
}

// --- extraction --------------------------------------------------------------------------------

Extractor::Extractor(const Root& root, UniqueFd dest, std::string dest_shown, ExtractLimits limits)
    : root_(root), dest_(std::move(dest)), dest_shown_(std::move(dest_shown)), limits_(limits) {}

Extractor::~Extractor() {
  // A file cut short (an error, a client gone) is not left half-written.
  if (file_) {
    file_.Reset();
    unlinkat(file_parent_.get(), file_name_.c_str(), 0);
  }
}

Result<UniqueFd> Extractor::ParentOf(const std::string& rel, std::string* name) {
  size_t slash = rel.rfind('/');
  *name = slash == std::string::npos ? rel : rel.substr(slash + 1);
  UniqueFd cur(fcntl(dest_.get(), F_DUPFD_CLOEXEC, 0));
  if (!cur) return FsError("dup", dest_shown_, errno);
  if (slash == std::string::npos) return cur;
  std::string parent = rel.substr(0, slash);
  std::string shown = dest_shown_;
  size_t start = 0;
  while (start <= parent.size()) {
    size_t s = parent.find('/', start);
    if (s == std::string::npos) s = parent.size();
    std::string comp = parent.substr(start, s - start);
    start = s + 1;
    shown = JoinPath(shown, comp);
    // One component at a time, never following a symlink: an entry cannot pass through a
    // symlink that an earlier entry (or the sandbox) put in its way.
    int fd = openat(cur.get(), comp.c_str(), O_PATH | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    if (fd < 0 && errno == ENOENT) {
      // Archives need not list every directory: make the missing ones.
      if (mkdirat(cur.get(), comp.c_str(), 0755) != 0 && errno != EEXIST)
        return FsError("mkdir", shown, errno);
      if (limits_.set_owners &&
          fchownat(cur.get(), comp.c_str(), root_.uid, root_.gid, AT_SYMLINK_NOFOLLOW) != 0)
        return FsError("chown", shown, errno);
      fd = openat(cur.get(), comp.c_str(), O_PATH | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    }
    if (fd < 0) {
      if (errno == ENOTDIR || errno == ELOOP)
        return InvalidArgument(
            fmt::format("archive entry '{}': {} is not a directory (a file or a symlink); refused",
                        rel, shown));
      return FsError("open", shown, errno);
    }
    cur = UniqueFd(fd);
  }
  RETURN_IF_ERROR(CheckServedFs(cur.get(), shown));
  return cur;
}

Status Extractor::ClearForNew(int parent, const std::string& name, const std::string& shown,
                              bool keep_dir) {
  struct stat st;
  if (fstatat(parent, name.c_str(), &st, AT_SYMLINK_NOFOLLOW) != 0) return Status::Ok();
  if (S_ISDIR(st.st_mode)) {
    if (keep_dir) return Status::Ok();
    // Replacing a directory by a file would need a recursive delete; tar refuses too.
    if (unlinkat(parent, name.c_str(), AT_REMOVEDIR) != 0)
      return Conflict(fmt::format("{}: a directory is in the way of an archive entry", shown));
    return Status::Ok();
  }
  if (unlinkat(parent, name.c_str(), 0) != 0 && errno != ENOENT)
    return FsError("replace", shown, errno);
  return Status::Ok();
}

Status Extractor::OnEntry(const TarEntry& e) {
  ActAsSandboxRoot as_root(root_);
  if (++entries_ > limits_.max_entries)
    return PayloadTooLarge(fmt::format(
        "the archive has more than {} entries, the most extracted at once", limits_.max_entries));
  ASSIGN_OR_RETURN(std::string rel, CleanEntryPath(e.path));
  switch (e.type) {
    case '0':
    case '1':
    case '2':
    case '5':
      break;
    case '3':
    case '4':
      return InvalidArgument(fmt::format("archive entry '{}' is a device node; refused", rel));
    case '6':
      return InvalidArgument(fmt::format("archive entry '{}' is a fifo; refused", rel));
    default:
      return InvalidArgument(
          fmt::format("archive entry '{}' has type '{}', which is not extracted", rel,
                      e.type >= 32 && e.type < 127 ? std::string(1, e.type) : "?"));
  }
  if (rel.empty()) {
    if (e.type == '5') return Status::Ok();  // "./": the destination itself
    return InvalidArgument("an archive entry that is not a directory has an empty name");
  }
  if (e.type == '0' && (e.size > limits_.max_bytes || bytes_ + e.size > limits_.max_bytes))
    return PayloadTooLarge(
        fmt::format("the archive's files are larger than {} bytes, the most extracted at once",
                    limits_.max_bytes));
  std::string shown = JoinPath(dest_shown_, rel);
  std::string name;
  ASSIGN_OR_RETURN(UniqueFd parent, ParentOf(rel, &name));
  // Never setuid or setgid: a tar must not plant privileged binaries.
  const uint32_t mode = e.mode & 01777;
  const uint32_t uid = HostId(e.uid, root_.uid), gid = HostId(e.gid, root_.gid);
  const char* n = name.c_str();
  switch (e.type) {
    case '5': {
      RETURN_IF_ERROR(ClearForNew(parent.get(), name, shown, /*keep_dir=*/true));
      if (mkdirat(parent.get(), n, 0700) != 0 && errno != EEXIST)
        return FsError("mkdir", shown, errno);
      UniqueFd dir(openat(parent.get(), n, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC));
      if (!dir) return FsError("open", shown, errno);
      if (limits_.set_owners && fchown(dir.get(), uid, gid) != 0)
        return FsError("chown", shown, errno);
      if (fchmod(dir.get(), mode) != 0) return FsError("chmod", shown, errno);
      dir_times_.push_back({rel, e.mtime});
      return Status::Ok();
    }
    case '0': {
      RETURN_IF_ERROR(ClearForNew(parent.get(), name, shown, /*keep_dir=*/false));
      UniqueFd fd(
          openat(parent.get(), n, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600));
      if (!fd) return FsError("create", shown, errno);
      file_ = std::move(fd);
      file_parent_ = std::move(parent);
      file_name_ = name;
      file_shown_ = shown;
      file_entry_ = e;
      if (limits_.set_owners && fchown(file_.get(), uid, gid) != 0)
        return FsError("chown", shown, errno);
      return Status::Ok();
    }
    case '2': {
      if (e.link.empty() || e.link.size() > kMaxPath || e.link.find('\0') != std::string::npos)
        return InvalidArgument(fmt::format("archive entry '{}': bad symlink target", rel));
      RETURN_IF_ERROR(ClearForNew(parent.get(), name, shown, /*keep_dir=*/false));
      // The target is stored as given: symlinks are only ever followed by the kernel inside the
      // sandbox, and by this server only with RESOLVE_IN_ROOT or not at all.
      if (symlinkat(e.link.c_str(), parent.get(), n) != 0) return FsError("symlink", shown, errno);
      if (limits_.set_owners && fchownat(parent.get(), n, uid, gid, AT_SYMLINK_NOFOLLOW) != 0)
        return FsError("chown", shown, errno);
      struct timespec times[2] = {{e.mtime, 0}, {e.mtime, 0}};
      (void)utimensat(parent.get(), n, times, AT_SYMLINK_NOFOLLOW);
      return Status::Ok();
    }
    case '1': {
      ASSIGN_OR_RETURN(std::string target, CleanEntryPath(e.link));
      if (target.empty()) return InvalidArgument(fmt::format("archive entry '{}': bad link", rel));
      ASSIGN_OR_RETURN(UniqueFd tfd,
                       OpenBeneath(dest_.get(), target, O_PATH | O_NOFOLLOW, RESOLVE_NO_SYMLINKS,
                                   JoinPath(dest_shown_, target)));
      struct stat st;
      if (fstat(tfd.get(), &st) != 0) return FsError("stat", shown, errno);
      if (!S_ISREG(st.st_mode))
        return InvalidArgument(
            fmt::format("archive entry '{}': hard links must point to regular files", rel));
      RETURN_IF_ERROR(ClearForNew(parent.get(), name, shown, /*keep_dir=*/false));
      if (linkat(tfd.get(), "", parent.get(), n, AT_EMPTY_PATH) != 0)
        return FsError("link", shown, errno);
      return Status::Ok();
    }
  }
  return Status::Ok();
}

Status Extractor::OnData(std::string_view data) {
  if (!file_) return Status::Ok();
  bytes_ += data.size();
  if (bytes_ > limits_.max_bytes)
    return PayloadTooLarge(
        fmt::format("the archive's files are larger than {} bytes, the most extracted at once",
                    limits_.max_bytes));
  return WriteAll(file_.get(), data, file_shown_);
}

Status Extractor::OnEntryEnd() {
  if (!file_) return Status::Ok();
  const uint32_t mode = file_entry_.mode & 01777;
  if (fchmod(file_.get(), mode) != 0) return FsError("chmod", file_shown_, errno);
  struct timespec times[2] = {{file_entry_.mtime, 0}, {file_entry_.mtime, 0}};
  if (futimens(file_.get(), times) != 0) return FsError("set times of", file_shown_, errno);
  if (close(file_.Release()) != 0) {
    int err = errno;
    unlinkat(file_parent_.get(), file_name_.c_str(), 0);
    return FsError("write", file_shown_, err);
  }
  file_parent_.Reset();
  ++files_;
  return Status::Ok();
}

Status Extractor::Finish() {
  // Children changed their directories' mtimes; set them last, deepest first.
  for (auto it = dir_times_.rbegin(); it != dir_times_.rend(); ++it) {
    auto fd = OpenBeneath(dest_.get(), it->rel, O_RDONLY | O_DIRECTORY | O_NOFOLLOW,
                          RESOLVE_NO_SYMLINKS, it->rel);
    if (!fd.ok()) continue;
    struct timespec times[2] = {{it->mtime, 0}, {it->mtime, 0}};
    (void)futimens(fd->get(), times);
  }
  dir_times_.clear();
  return Status::Ok();
}

}  // namespace hutch::files
