#include "drivers/local/layer_apply.h"

#include <fcntl.h>
#include <linux/openat2.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/xattr.h>
#include <unistd.h>

#include <cerrno>
#include <utility>
#include <vector>

#include <fmt/format.h>

#include "files/codec.h"
#include "files/resolve.h"
#include "files/tar.h"
#include "sandbox/fs.h"

namespace hutch::drivers::local {

// Reads the file at `fd` to its end in pieces.
Status ReadAllChunks(int fd, const std::string& what,
                     const std::function<Status(std::string_view)>& fn) {
  std::string buf(kChunk, '\0');
  for (;;) {
    ssize_t n = read(fd, buf.data(), buf.size());
    if (n < 0) {
      if (errno == EINTR) continue;
      return ErrnoError("read " + what, errno);
    }
    if (n == 0) return Status::Ok();
    RETURN_IF_ERROR(fn(std::string_view(buf.data(), static_cast<size_t>(n))));
  }
}

// An entry path made relative and clean: no leading "/" or "./", no "." or empty components;
// ".." anywhere is refused.
Result<std::string> CleanPath(std::string_view path) {
  std::string out;
  size_t start = 0;
  while (start <= path.size()) {
    size_t s = path.find('/', start);
    if (s == std::string_view::npos) s = path.size();
    std::string_view comp = path.substr(start, s - start);
    start = s + 1;
    if (comp.empty() || comp == ".") continue;
    if (comp == "..")
      return InvalidArgument(fmt::format("layer entry '{}' climbs out with '..'; refused", path));
    if (!out.empty()) out.push_back('/');
    out.append(comp);
  }
  if (out.size() > 4095) return InvalidArgument("layer entry path too long");
  return out;
}

// Applies one layer tar to an empty directory in overlayfs' lower format (file comment of
// image_store.h). Every parent is walked one component at a time without following symlinks,
// so no entry lands outside the directory.
class LayerWriter final : public files::TarSink {
 public:
  explicit LayerWriter(UniqueFd root) : root_(std::move(root)) {}
  ~LayerWriter() override = default;

  Status OnEntry(const files::TarEntry& e) override {
    ++entries_;
    file_.Reset();
    ASSIGN_OR_RETURN(std::string rel, CleanPath(e.path));
    if (rel.empty()) return Status::Ok();  // "./"
    size_t slash = rel.rfind('/');
    std::string name = slash == std::string::npos ? rel : rel.substr(slash + 1);
    std::string parent_rel = slash == std::string::npos ? "" : rel.substr(0, slash);
    ASSIGN_OR_RETURN(UniqueFd parent, Parent(parent_rel));
    const int p = parent.get();
    const uint32_t uid = e.uid > 65535 ? 0 : e.uid, gid = e.gid > 65535 ? 0 : e.gid;
    if (name == kOpaqueMarker) {
      UniqueFd dir(openat(p, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC));
      if (!dir) return ErrnoError("open " + parent_rel, errno);
      for (const char* attr : {"trusted.overlay.opaque", "user.overlay.opaque"}) {
        if (fsetxattr(dir.get(), attr, "y", 1, 0) != 0)
          return ErrnoError(fmt::format("mark {} opaque ({})", parent_rel, attr), errno);
      }
      return Status::Ok();
    }
    if (name.rfind(kWhiteoutPrefix, 0) == 0) {
      std::string target = name.substr(kWhiteoutPrefix.size());
      if (target.empty() || target == "." || target == "..")
        return InvalidArgument(fmt::format("layer entry '{}': bad whiteout", rel));
      RETURN_IF_ERROR(Clear(p, target, false));
      if (mknodat(p, target.c_str(), S_IFCHR | 0, makedev(0, 0)) != 0)
        return ErrnoError("whiteout " + rel, errno);
      return Status::Ok();
    }
    const char* n = name.c_str();
    switch (e.type) {
      case '5': {
        RETURN_IF_ERROR(Clear(p, name, true));
        if (mkdirat(p, n, 0755) != 0 && errno != EEXIST) return ErrnoError("mkdir " + rel, errno);
        if (fchownat(p, n, uid, gid, AT_SYMLINK_NOFOLLOW) != 0)
          return ErrnoError("chown " + rel, errno);
        if (fchmodat(p, n, e.mode & 07777, 0) != 0) return ErrnoError("chmod " + rel, errno);
        dir_times_.push_back({rel, e.mtime});
        return Status::Ok();
      }
      case '0':
      case '7': {
        RETURN_IF_ERROR(Clear(p, name, false));
        file_.Reset(openat(p, n, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600));
        if (!file_) return ErrnoError("create " + rel, errno);
        if (fchown(file_.get(), uid, gid) != 0) return ErrnoError("chown " + rel, errno);
        // After chown, which clears setuid bits.
        if (fchmod(file_.get(), e.mode & 07777) != 0) return ErrnoError("chmod " + rel, errno);
        file_rel_ = rel;
        file_mtime_ = e.mtime;
        bytes_ += e.size;
        return Status::Ok();
      }
      case '2': {
        if (e.link.empty()) return InvalidArgument(fmt::format("layer entry '{}': no target", rel));
        RETURN_IF_ERROR(Clear(p, name, false));
        // Stored as given: only the kernel follows it, inside the sandbox.
        if (symlinkat(e.link.c_str(), p, n) != 0) return ErrnoError("symlink " + rel, errno);
        if (fchownat(p, n, uid, gid, AT_SYMLINK_NOFOLLOW) != 0)
          return ErrnoError("chown " + rel, errno);
        struct timespec times[2] = {{e.mtime, 0}, {e.mtime, 0}};
        (void)utimensat(p, n, times, AT_SYMLINK_NOFOLLOW);
        return Status::Ok();
      }
      case '1': {
        ASSIGN_OR_RETURN(std::string target, CleanPath(e.link));
        if (target.empty()) return InvalidArgument(fmt::format("layer entry '{}': bad link", rel));
        ASSIGN_OR_RETURN(UniqueFd t, files::OpenBeneath(root_.get(), target, O_PATH | O_NOFOLLOW,
                                                        RESOLVE_NO_SYMLINKS, target));
        struct stat st;
        if (fstat(t.get(), &st) != 0) return ErrnoError("stat " + target, errno);
        if (S_ISDIR(st.st_mode))
          return InvalidArgument(fmt::format("layer entry '{}': hard link to a directory", rel));
        RETURN_IF_ERROR(Clear(p, name, false));
        if (linkat(t.get(), "", p, n, AT_EMPTY_PATH) != 0) return ErrnoError("link " + rel, errno);
        return Status::Ok();
      }
      case '6': {
        RETURN_IF_ERROR(Clear(p, name, false));
        if (mknodat(p, n, S_IFIFO | (e.mode & 0777), 0) != 0)
          return ErrnoError("mkfifo " + rel, errno);
        (void)fchownat(p, n, uid, gid, AT_SYMLINK_NOFOLLOW);
        return Status::Ok();
      }
      default:
        // Device nodes: sandboxes get their own /dev, and lower layers are mounted nodev.
        ++skipped_;
        return Status::Ok();
    }
  }

  Status OnData(std::string_view data) override {
    if (!file_) return Status::Ok();
    size_t done = 0;
    while (done < data.size()) {
      ssize_t n = write(file_.get(), data.data() + done, data.size() - done);
      if (n < 0) {
        if (errno == EINTR) continue;
        return ErrnoError("write " + file_rel_, errno);
      }
      done += static_cast<size_t>(n);
    }
    return Status::Ok();
  }

  Status OnEntryEnd() override {
    if (!file_) return Status::Ok();
    struct timespec times[2] = {{file_mtime_, 0}, {file_mtime_, 0}};
    (void)futimens(file_.get(), times);
    if (close(file_.Release()) != 0) return ErrnoError("write " + file_rel_, errno);
    return Status::Ok();
  }

  // Directory times, deepest first (their children changed them).
  void Finish() {
    for (auto it = dir_times_.rbegin(); it != dir_times_.rend(); ++it) {
      auto fd = files::OpenBeneath(root_.get(), it->first, O_RDONLY | O_DIRECTORY | O_NOFOLLOW,
                                   RESOLVE_NO_SYMLINKS, it->first);
      if (!fd.ok()) continue;
      struct timespec times[2] = {{it->second, 0}, {it->second, 0}};
      (void)futimens(fd->get(), times);
    }
  }

  int64_t entries() const { return entries_; }

 private:
  Result<UniqueFd> Parent(const std::string& rel) {
    UniqueFd cur(fcntl(root_.get(), F_DUPFD_CLOEXEC, 0));
    if (!cur) return ErrnoError("dup", errno);
    size_t start = 0;
    while (!rel.empty() && start <= rel.size()) {
      size_t s = rel.find('/', start);
      if (s == std::string::npos) s = rel.size();
      std::string comp = rel.substr(start, s - start);
      start = s + 1;
      int fd = openat(cur.get(), comp.c_str(), O_PATH | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
      if (fd < 0 && errno == ENOENT) {
        if (mkdirat(cur.get(), comp.c_str(), 0755) != 0 && errno != EEXIST)
          return ErrnoError("mkdir " + rel, errno);
        fd = openat(cur.get(), comp.c_str(), O_PATH | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
      }
      if (fd < 0) {
        if (errno == ENOTDIR || errno == ELOOP)
          return InvalidArgument(
              fmt::format("layer entry below '{}': not a directory (a file or a symlink)", rel));
        return ErrnoError("open " + rel, errno);
      }
      cur = UniqueFd(fd);
    }
    return cur;
  }

  // A later entry replaces an earlier one of the same name (a directory stays for a directory).
  Status Clear(int parent, const std::string& name, bool keep_dir) {
    struct stat st;
    if (fstatat(parent, name.c_str(), &st, AT_SYMLINK_NOFOLLOW) != 0) return Status::Ok();
    if (S_ISDIR(st.st_mode)) {
      if (keep_dir) return Status::Ok();
      UniqueFd d(openat(parent, name.c_str(), O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC));
      if (d) RETURN_IF_ERROR(sandbox::RemoveDirContents(d.get(), name));
      if (unlinkat(parent, name.c_str(), AT_REMOVEDIR) != 0)
        return ErrnoError("rmdir " + name, errno);
      return Status::Ok();
    }
    if (unlinkat(parent, name.c_str(), 0) != 0 && errno != ENOENT)
      return ErrnoError("replace " + name, errno);
    return Status::Ok();
  }

  UniqueFd root_;
  UniqueFd file_;
  std::string file_rel_;
  int64_t file_mtime_ = 0;
  int64_t entries_ = 0, bytes_ = 0, skipped_ = 0;
  std::vector<std::pair<std::string, int64_t>> dir_times_;
};

LayerSink::LayerSink(UniqueFd root)
    : writer_(std::make_unique<LayerWriter>(std::move(root))),
      reader_(std::make_unique<files::TarReader>(*writer_)) {}

LayerSink::~LayerSink() = default;

Status LayerSink::Feed(std::string_view data) {
  sha_.Update(data);
  size_ += static_cast<int64_t>(data.size());
  return reader_->Feed(data);
}

Status LayerSink::Finish() {
  RETURN_IF_ERROR(reader_->Finish());
  writer_->Finish();
  return Status::Ok();
}

int64_t LayerSink::entries() const { return writer_->entries(); }

// Layers of a tar stream (plain, gzip or zstd): decompresses and feeds a LayerSink.
Status FeedCompressed(int fd, const std::string& what, LayerSink* sink, Sha256* blob_sha,
                      const ImageProgressFn& progress, double from, double to, int64_t total) {
  files::Decompressor dec([sink](std::string_view d) { return sink->Feed(d); });
  int64_t done = 0, last = 0;
  RETURN_IF_ERROR(ReadAllChunks(fd, what, [&](std::string_view d) -> Status {
    if (blob_sha) blob_sha->Update(d);
    done += static_cast<int64_t>(d.size());
    if (progress && total > 0 && done - last > (8 << 20)) {
      last = done;
      progress(from + (to - from) * static_cast<double>(done) / static_cast<double>(total),
               fmt::format("extracting {}", what));
    }
    return dec.Feed(d);
  }));
  RETURN_IF_ERROR(dec.Finish());
  return sink->Finish();
}

}  // namespace hutch::drivers::local
