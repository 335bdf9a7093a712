#include "drivers/local/image_store.h"

#include <dirent.h>
#include <fcntl.h>
#include <linux/openat2.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/sysmacros.h>
#include <sys/xattr.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <map>
#include <memory>
#include <set>

#include <fmt/format.h>

#include "common/hmac.h"
#include "common/ids.h"
#include "common/json.h"
#include "common/scope_guard.h"
#include "common/sha256.h"
#include "common/unique_fd.h"
#include "drivers/local/checkpoint_files.h"
#include "files/archive.h"
#include "files/codec.h"
#include "files/resolve.h"
#include "files/tar.h"
#include "sandbox/fs.h"

namespace hutch::drivers::local {

namespace {

constexpr size_t kChunk = 1 << 20;
constexpr std::string_view kWhiteoutPrefix = ".wh.";
constexpr std::string_view kOpaqueMarker = ".wh..wh..opq";

std::string Hex(const unsigned char* p, size_t n) {
  return HexEncode(std::string_view(reinterpret_cast<const char*>(p), n));
}

Status IntegrityError(std::string what) {
  return Conflict(fmt::format("integrity check failed: {}; it is not used", what));
}

// "sha256:<64 hex>" → "<hex>"; "" when it is not one.
std::string DigestHex(std::string_view digest) {
  if (digest.substr(0, 7) != "sha256:" || digest.size() != 7 + 64) return "";
  std::string_view hex = digest.substr(7);
  for (char c : hex)
    if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'))) return "";
  return std::string(hex);
}

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

// Feeds a layer's tar bytes to a LayerWriter and hashes them.
struct LayerSink {
  explicit LayerSink(UniqueFd root) : writer(std::move(root)), reader(writer) {}
  Status Feed(std::string_view data) {
    sha.Update(data);
    size += static_cast<int64_t>(data.size());
    return reader.Feed(data);
  }
  LayerWriter writer;
  files::TarReader reader;
  Sha256 sha;
  int64_t size = 0;
};

// Sorted names of a directory, "." and ".." left out.
Result<std::vector<std::string>> ListDir(int dir_fd, const std::string& what) {
  int fd = openat(dir_fd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0) return ErrnoError("open " + what, errno);
  DIR* d = fdopendir(fd);
  if (!d) {
    close(fd);
    return ErrnoError("fdopendir " + what, errno);
  }
  std::vector<std::string> names;
  while (dirent* de = readdir(d)) {
    std::string n = de->d_name;
    if (n != "." && n != "..") names.push_back(std::move(n));
  }
  closedir(d);
  std::sort(names.begin(), names.end());
  return names;
}

Status StampDir(int dir_fd, const std::string& rel, Sha256* sha, int64_t* entries) {
  ASSIGN_OR_RETURN(std::vector<std::string> names, ListDir(dir_fd, rel));
  for (const auto& n : names) {
    struct stat st;
    if (fstatat(dir_fd, n.c_str(), &st, AT_SYMLINK_NOFOLLOW) != 0)
      return ErrnoError("stat " + rel + "/" + n, errno);
    ++*entries;
    // Fixed-width fields, then the path: no formatting per entry (this runs at every create).
    const uint64_t fields[] = {
        static_cast<uint64_t>(st.st_mode),        static_cast<uint64_t>(st.st_uid),
        static_cast<uint64_t>(st.st_gid),         static_cast<uint64_t>(st.st_size),
        static_cast<uint64_t>(st.st_mtim.tv_sec), static_cast<uint64_t>(st.st_mtim.tv_nsec),
        static_cast<uint64_t>(st.st_ctim.tv_sec), static_cast<uint64_t>(st.st_ctim.tv_nsec),
        static_cast<uint64_t>(st.st_ino),         static_cast<uint64_t>(rel.size() + 1 + n.size())};
    sha->Update(std::string_view(reinterpret_cast<const char*>(fields), sizeof fields));
    sha->Update(rel);
    sha->Update("/");
    sha->Update(n);
    if (S_ISDIR(st.st_mode)) {
      UniqueFd sub(openat(dir_fd, n.c_str(), O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC));
      if (!sub) return ErrnoError("open " + rel + "/" + n, errno);
      RETURN_IF_ERROR(StampDir(sub.get(), rel + "/" + n, sha, entries));
    }
  }
  return Status::Ok();
}

bool IsOpaque(int dir_fd) {
  char v[4];
  for (const char* attr : {"trusted.overlay.opaque", "user.overlay.opaque"}) {
    ssize_t n = fgetxattr(dir_fd, attr, v, sizeof v);
    if (n == 1 && v[0] == 'y') return true;
  }
  return false;
}

// Writes a tree as an OCI layer tar: overlay whiteouts (0/0 character devices) become
// `.wh.NAME` entries, opaque directories get a `.wh..wh..opq` entry, other device nodes and
// sockets are left out; files with several links are hard links after their first path.
class TreeTarWriter {
 public:
  explicit TreeTarWriter(std::function<Status(std::string_view)> out) : out_(std::move(out)) {}

  Status Write(int dir_fd) {
    RETURN_IF_ERROR(Dir(dir_fd, ""));
    RETURN_IF_ERROR(Flush(files::TarTrailer()));
    if (!buf_.empty()) RETURN_IF_ERROR(out_(buf_));
    buf_.clear();
    return Status::Ok();
  }

 private:
  Status Flush(std::string_view data) {
    buf_.append(data);
    if (buf_.size() >= kChunk) {
      RETURN_IF_ERROR(out_(buf_));
      buf_.clear();
    }
    return Status::Ok();
  }

  files::TarEntry Entry(const std::string& path, const struct stat& st, char type) {
    files::TarEntry e;
    e.path = path;
    e.type = type;
    e.mode = st.st_mode & 07777;
    e.uid = st.st_uid;
    e.gid = st.st_gid;
    e.mtime = st.st_mtim.tv_sec;
    return e;
  }

  Status Dir(int dir_fd, const std::string& rel) {
    if (!rel.empty() && IsOpaque(dir_fd)) {
      files::TarEntry e;
      e.path = rel + "/" + std::string(kOpaqueMarker);
      e.type = '0';
      e.mode = 0644;
      RETURN_IF_ERROR(Flush(files::EncodeTarHeader(e)));
    }
    ASSIGN_OR_RETURN(std::vector<std::string> names, ListDir(dir_fd, rel));
    for (const auto& n : names) {
      std::string path = rel.empty() ? n : rel + "/" + n;
      struct stat st;
      if (fstatat(dir_fd, n.c_str(), &st, AT_SYMLINK_NOFOLLOW) != 0)
        return ErrnoError("stat " + path, errno);
      if (S_ISDIR(st.st_mode)) {
        RETURN_IF_ERROR(Flush(files::EncodeTarHeader(Entry(path + "/", st, '5'))));
        UniqueFd sub(openat(dir_fd, n.c_str(), O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC));
        if (!sub) return ErrnoError("open " + path, errno);
        RETURN_IF_ERROR(Dir(sub.get(), path));
      } else if (S_ISCHR(st.st_mode) && st.st_rdev == makedev(0, 0)) {
        files::TarEntry e;
        e.path = (rel.empty() ? "" : rel + "/") + std::string(kWhiteoutPrefix) + n;
        e.type = '0';
        e.mode = 0644;
        RETURN_IF_ERROR(Flush(files::EncodeTarHeader(e)));
      } else if (S_ISLNK(st.st_mode)) {
        std::string target(PATH_MAX, '\0');
        ssize_t len = readlinkat(dir_fd, n.c_str(), target.data(), target.size());
        if (len < 0) return ErrnoError("readlink " + path, errno);
        target.resize(static_cast<size_t>(len));
        files::TarEntry e = Entry(path, st, '2');
        e.link = target;
        RETURN_IF_ERROR(Flush(files::EncodeTarHeader(e)));
      } else if (S_ISFIFO(st.st_mode)) {
        RETURN_IF_ERROR(Flush(files::EncodeTarHeader(Entry(path, st, '6'))));
      } else if (S_ISREG(st.st_mode)) {
        if (st.st_nlink > 1) {
          auto [it, fresh] = links_.try_emplace({st.st_dev, st.st_ino}, path);
          if (!fresh) {
            files::TarEntry e = Entry(path, st, '1');
            e.link = it->second;
            RETURN_IF_ERROR(Flush(files::EncodeTarHeader(e)));
            continue;
          }
        }
        files::TarEntry e = Entry(path, st, '0');
        e.size = static_cast<uint64_t>(st.st_size);
        RETURN_IF_ERROR(Flush(files::EncodeTarHeader(e)));
        UniqueFd f(openat(dir_fd, n.c_str(), O_RDONLY | O_NOFOLLOW | O_CLOEXEC));
        if (!f) return ErrnoError("open " + path, errno);
        uint64_t left = e.size;
        std::string chunk(kChunk, '\0');
        while (left > 0) {
          ssize_t r = read(f.get(), chunk.data(), std::min<uint64_t>(left, chunk.size()));
          if (r < 0 && errno == EINTR) continue;
          if (r < 0) return ErrnoError("read " + path, errno);
          if (r == 0) return Conflict(fmt::format("{} shrank while it was read", path));
          RETURN_IF_ERROR(Flush(std::string_view(chunk.data(), static_cast<size_t>(r))));
          left -= static_cast<uint64_t>(r);
        }
        RETURN_IF_ERROR(Flush(std::string(files::TarPadding(e.size), '\0')));
      }
      // Sockets and device nodes are not image content.
    }
    return Status::Ok();
  }

  std::function<Status(std::string_view)> out_;
  std::string buf_;
  std::map<std::pair<dev_t, ino_t>, std::string> links_;
};

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
  RETURN_IF_ERROR(sink->reader.Finish());
  sink->writer.Finish();
  return Status::Ok();
}

Result<std::string> RandomSuffix() {
  unsigned char b[8];
  if (getrandom(b, sizeof b, 0) != sizeof b) return ErrnoError("getrandom", errno);
  return Hex(b, sizeof b);
}

std::string CanonicalLayer(const LayerRecord& l) {
  return fmt::format("hutch-layer\n{}\n{}\n{}\n{}\n{}\n", l.digest, l.size_bytes, l.entries,
                     l.stamp, ToUnixMillis(l.created_at));
}

std::string CanonicalImage(const ImageRecord& m) {
  std::string s = fmt::format("hutch-image\n{}\n{}\n{}\n{}\n{}\n{}\n", m.version, m.name, m.owner,
                              m.source, m.source_digest, ToUnixMillis(m.created_at));
  for (const auto& l : m.layers) s += fmt::format("layer {} {}\n", l.digest, l.size_bytes);
  for (const auto& e : m.config.env) s += fmt::format("env {}\n", e.size()) + e + "\n";
  for (const auto& c : m.config.cmd) s += fmt::format("cmd {}\n", c.size()) + c + "\n";
  s += "workdir " + m.config.workdir + "\n";
  return s;
}

json::array StringsToJson(const std::vector<std::string>& v) {
  json::array a;
  for (const auto& s : v) a.emplace_back(s);
  return a;
}

bool JsonStrings(const json::value* v, std::vector<std::string>* out) {
  out->clear();
  if (!v || v->is_null()) return true;
  if (!v->is_array()) return false;
  for (const auto& e : v->as_array()) {
    if (!e.is_string()) return false;
    out->emplace_back(e.as_string());
  }
  return true;
}

Result<UniqueFd> OpenInArchive(int dir_fd, const std::string& path) {
  open_how how{};
  how.flags = O_RDONLY | O_CLOEXEC;
  how.resolve = RESOLVE_IN_ROOT | RESOLVE_NO_MAGICLINKS;
  UniqueFd fd(static_cast<int>(syscall(SYS_openat2, dir_fd, path.c_str(), &how, sizeof how)));
  if (!fd) return InvalidArgument(fmt::format("the archive has no {}", path));
  return fd;
}

Result<json::object> ReadJsonFile(int dir_fd, const std::string& path, size_t max_bytes) {
  ASSIGN_OR_RETURN(UniqueFd fd, OpenInArchive(dir_fd, path));
  std::string text;
  RETURN_IF_ERROR(ReadAllChunks(fd.get(), path, [&](std::string_view d) -> Status {
    text.append(d);
    if (text.size() > max_bytes) return InvalidArgument(path + " is too large");
    return Status::Ok();
  }));
  auto o = ParseJsonObject(text);
  if (!o.ok()) return InvalidArgument(fmt::format("{}: {}", path, o.status().message()));
  return *o;
}

Result<std::string> HashFile(int fd, const std::string& what) {
  Sha256 sha;
  RETURN_IF_ERROR(ReadAllChunks(fd, what, [&](std::string_view d) -> Status {
    sha.Update(d);
    return Status::Ok();
  }));
  if (lseek(fd, 0, SEEK_SET) != 0) return ErrnoError("seek " + what, errno);
  return sha.HexDigest();
}

// OCI/docker image config → env, cmd, workdir, diff_ids.
Status ParseImageConfig(const json::object& cfg, ImageConfigInfo* info,
                        std::vector<std::string>* diff_ids) {
  if (const json::value* c = cfg.if_contains("config"); c && c->is_object()) {
    const json::object& co = c->as_object();
    std::vector<std::string> entry, cmd;
    if (!JsonStrings(co.if_contains("Env"), &info->env) ||
        !JsonStrings(co.if_contains("Entrypoint"), &entry) ||
        !JsonStrings(co.if_contains("Cmd"), &cmd))
      return InvalidArgument("the image config's Env, Entrypoint or Cmd is not a string list");
    info->cmd = entry;
    info->cmd.insert(info->cmd.end(), cmd.begin(), cmd.end());
    if (const json::value* w = co.if_contains("WorkingDir"); w && w->is_string())
      info->workdir = std::string(w->as_string());
  }
  const json::value* rootfs = cfg.if_contains("rootfs");
  if (!rootfs || !rootfs->is_object() ||
      !JsonStrings(rootfs->as_object().if_contains("diff_ids"), diff_ids))
    return InvalidArgument("the image config has no rootfs.diff_ids");
  for (const auto& d : *diff_ids)
    if (DigestHex(d).empty()) return InvalidArgument("bad diff_id in the image config: " + d);
  return Status::Ok();
}

}  // namespace

bool IsValidImageFormat(std::string_view f) {
  return f == "auto" || f == "rootfs" || f == "oci" || f == "docker-archive";
}

bool IsValidImageName(std::string_view name) {
  if (name.empty() || name.size() > 63 || name == "host") return false;
  if (!((name[0] >= 'a' && name[0] <= 'z') || (name[0] >= '0' && name[0] <= '9'))) return false;
  for (char c : name) {
    if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' || c == '.' || c == '_'))
      return false;
  }
  return true;
}

Result<std::string> StampTree(int dir_fd, int64_t* entries) {
  Sha256 sha;
  int64_t n = 0;
  RETURN_IF_ERROR(StampDir(dir_fd, "", &sha, &n));
  if (entries) *entries = n;
  return sha.HexDigest();
}

Result<std::unique_ptr<ImageStore>> ImageStore::Open(const std::string& dir) {
  for (const char* sub : {"/layers", "/manifests", "/tmp"})
    RETURN_IF_ERROR(sandbox::MakeDirs(dir + sub, 0700));
  // Leftovers of imports a crash interrupted.
  UniqueFd tmp(open((dir + "/tmp").c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
  if (tmp) (void)sandbox::RemoveDirContents(tmp.get(), dir + "/tmp");
  ASSIGN_OR_RETURN(std::string key, LoadOrMakeCheckpointKey(dir));
  auto store = std::unique_ptr<ImageStore>(new ImageStore(dir, std::move(key)));
  {
    std::lock_guard lock(store->mu_);
    store->CollectLayers();
  }
  return store;
}

std::string ImageStore::LayerDir(const std::string& digest) const {
  return fmt::format("{}/layers/{}", dir_, DigestHex(digest));
}

Result<std::string> ImageStore::MakeTmp(std::string_view what) {
  ASSIGN_OR_RETURN(std::string suffix, RandomSuffix());
  std::string path = fmt::format("{}/{}-{}", TmpDir(), what, suffix);
  RETURN_IF_ERROR(sandbox::MakeDir(path, 0700));
  return path;
}

Result<LayerRecord> ImageStore::ReadLayer(const std::string& digest) {
  std::string hex = DigestHex(digest);
  if (hex.empty()) return InvalidArgument("bad layer digest: " + digest);
  auto text = sandbox::ReadFileToString(LayerDir(digest) + "/layer.json");
  if (!text.ok()) return text.status();
  auto o = ParseJsonObject(*text);
  if (!o.ok()) return IntegrityError(fmt::format("layer {}: its record does not parse", digest));
  LayerRecord l;
  const json::value *d = o->if_contains("digest"), *sz = o->if_contains("size_bytes"),
                    *en = o->if_contains("entries"), *st = o->if_contains("stamp"),
                    *at = o->if_contains("created_at_ms"), *mac = o->if_contains("mac");
  if (!d || !d->is_string() || !sz || !sz->is_int64() || !en || !en->is_int64() || !st ||
      !st->is_string() || !at || !at->is_int64() || !mac || !mac->is_string())
    return IntegrityError(fmt::format("layer {}: its record lacks a field", digest));
  l.digest = std::string(d->as_string());
  l.size_bytes = sz->as_int64();
  l.entries = en->as_int64();
  l.stamp = std::string(st->as_string());
  l.created_at = FromUnixMillis(at->as_int64());
  if (!ConstantTimeEquals(mac->as_string(), HmacSha256Hex(key_, CanonicalLayer(l))) ||
      l.digest != digest)
    return IntegrityError(fmt::format("layer {}: its record's signature does not match", digest));
  return l;
}

Result<LayerRecord> ImageStore::InstallLayer(const std::string& tmp_dir, const std::string& digest,
                                             int64_t size, int64_t entries) {
  std::lock_guard lock(mu_);
  std::string dest = LayerDir(digest);
  if (auto existing = ReadLayer(digest); existing.ok()) {
    (void)sandbox::RemoveTree(tmp_dir);
    return *existing;
  }
  // A layer directory without a valid record is a leftover (or was tampered with): replace it.
  if (sandbox::PathExists(dest)) RETURN_IF_ERROR(sandbox::RemoveTree(dest));
  if (rename(tmp_dir.c_str(), dest.c_str()) != 0)
    return ErrnoError("install layer " + digest, errno);
  LayerRecord l;
  l.digest = digest;
  l.size_bytes = size;
  l.created_at = Now();
  // The stamp is taken in place: nothing changes the tree after this.
  UniqueFd root(open((dest + "/root").c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
  if (!root) return ErrnoError("open layer " + digest, errno);
  int64_t n = 0;
  ASSIGN_OR_RETURN(l.stamp, StampTree(root.get(), &n));
  l.entries = entries > 0 ? entries : n;
  json::object o;
  o["digest"] = l.digest;
  o["size_bytes"] = l.size_bytes;
  o["entries"] = l.entries;
  o["stamp"] = l.stamp;
  o["created_at_ms"] = ToUnixMillis(l.created_at);
  o["mac"] = HmacSha256Hex(key_, CanonicalLayer(l));
  std::string tmp = dest + "/layer.json.tmp";
  unlink(tmp.c_str());
  RETURN_IF_ERROR(sandbox::WriteNewFile(tmp, json::serialize(o) + "\n", 0600));
  if (rename(tmp.c_str(), (dest + "/layer.json").c_str()) != 0)
    return ErrnoError("install layer record " + digest, errno);
  pinned_.insert(digest);
  return l;
}

Status ImageStore::WriteManifest(const ImageRecord& m) {
  json::object o;
  o["version"] = m.version;
  o["name"] = m.name;
  o["owner"] = m.owner;
  o["source"] = m.source;
  o["source_digest"] = m.source_digest;
  o["created_at_ms"] = ToUnixMillis(m.created_at);
  json::array layers;
  for (const auto& l : m.layers) {
    json::object lo;
    lo["digest"] = l.digest;
    lo["size_bytes"] = l.size_bytes;
    layers.push_back(std::move(lo));
  }
  o["layers"] = std::move(layers);
  json::object cfg;
  cfg["env"] = StringsToJson(m.config.env);
  cfg["cmd"] = StringsToJson(m.config.cmd);
  cfg["workdir"] = m.config.workdir;
  o["config"] = std::move(cfg);
  o["mac"] = HmacSha256Hex(key_, CanonicalImage(m));
  std::string path = fmt::format("{}/manifests/{}.json", dir_, m.name);
  std::string tmp = path + ".tmp";
  unlink(tmp.c_str());
  RETURN_IF_ERROR(sandbox::WriteNewFile(tmp, json::serialize(o) + "\n", 0600));
  // link, not rename: an image of that name made meanwhile is not replaced.
  if (link(tmp.c_str(), path.c_str()) != 0) {
    int err = errno;
    unlink(tmp.c_str());
    if (err == EEXIST) return Conflict(fmt::format("image {} exists already", m.name));
    return ErrnoError("install manifest of " + m.name, err);
  }
  unlink(tmp.c_str());
  return Status::Ok();
}

Result<ImageRecord> ImageStore::Get(const std::string& name) {
  if (!IsValidImageName(name)) return InvalidArgument(fmt::format("bad image name '{}'", name));
  auto text = sandbox::ReadFileToString(fmt::format("{}/manifests/{}.json", dir_, name));
  if (!text.ok()) {
    if (text.status().code() == Code::kNotFound)
      return NotFound(fmt::format("image {} not found", name));
    return text.status();
  }
  auto parsed = ParseJsonObject(*text);
  if (!parsed.ok())
    return IntegrityError(fmt::format("image {}: its manifest does not parse", name));
  const json::object& o = *parsed;
  ImageRecord m;
  auto str = [&](const char* k, std::string* out) {
    const json::value* v = o.if_contains(k);
    if (!v || !v->is_string()) return false;
    *out = std::string(v->as_string());
    return true;
  };
  std::string mac;
  const json::value* version = o.if_contains("version");
  const json::value* created = o.if_contains("created_at_ms");
  const json::value* layers = o.if_contains("layers");
  const json::value* cfg = o.if_contains("config");
  if (!version || !version->is_int64() || !created || !created->is_int64() || !layers ||
      !layers->is_array() || !cfg || !cfg->is_object() || !str("name", &m.name) ||
      !str("owner", &m.owner) || !str("source", &m.source) ||
      !str("source_digest", &m.source_digest) || !str("mac", &mac))
    return IntegrityError(fmt::format("image {}: its manifest lacks a field", name));
  m.version = static_cast<int>(version->as_int64());
  m.created_at = FromUnixMillis(created->as_int64());
  for (const auto& lv : layers->as_array()) {
    if (!lv.is_object()) return IntegrityError(fmt::format("image {}: a bad layer", name));
    const json::value* d = lv.as_object().if_contains("digest");
    const json::value* s = lv.as_object().if_contains("size_bytes");
    if (!d || !d->is_string() || !s || !s->is_int64())
      return IntegrityError(fmt::format("image {}: a bad layer", name));
    LayerRecord l;
    l.digest = std::string(d->as_string());
    l.size_bytes = s->as_int64();
    m.layers.push_back(std::move(l));
  }
  const json::object& co = cfg->as_object();
  if (!JsonStrings(co.if_contains("env"), &m.config.env) ||
      !JsonStrings(co.if_contains("cmd"), &m.config.cmd))
    return IntegrityError(fmt::format("image {}: a bad config", name));
  if (const json::value* w = co.if_contains("workdir"); w && w->is_string())
    m.config.workdir = std::string(w->as_string());
  if (m.name != name || !ConstantTimeEquals(mac, HmacSha256Hex(key_, CanonicalImage(m))))
    return IntegrityError(fmt::format("image {}: its manifest's signature does not match", name));
  return m;
}

Result<std::vector<ImageRecord>> ImageStore::List() {
  UniqueFd dir(open((dir_ + "/manifests").c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
  if (!dir) return ErrnoError("open " + dir_ + "/manifests", errno);
  ASSIGN_OR_RETURN(std::vector<std::string> names, ListDir(dir.get(), "manifests"));
  std::vector<ImageRecord> out;
  for (const auto& n : names) {
    if (n.size() < 6 || n.substr(n.size() - 5) != ".json") continue;
    auto m = Get(n.substr(0, n.size() - 5));
    if (m.ok()) out.push_back(std::move(*m));
  }
  return out;
}

void ImageStore::CollectLayers() {
  std::set<std::string> used;
  for (const auto& p : pinned_) used.insert(DigestHex(p));
  UniqueFd dir(open((dir_ + "/manifests").c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
  if (!dir) return;
  auto names = ListDir(dir.get(), "manifests");
  if (!names.ok()) return;
  for (const auto& n : *names) {
    if (n.size() < 6 || n.substr(n.size() - 5) != ".json") continue;
    // A manifest that fails its check still keeps its layers: deleting it is the user's call.
    auto text = sandbox::ReadFileToString(fmt::format("{}/manifests/{}", dir_, n));
    if (!text.ok()) return;  // unsure what is used: collect nothing
    auto o = ParseJsonObject(*text);
    if (!o.ok()) continue;
    const json::value* layers = o->if_contains("layers");
    if (!layers || !layers->is_array()) continue;
    for (const auto& lv : layers->as_array()) {
      if (!lv.is_object()) continue;
      const json::value* d = lv.as_object().if_contains("digest");
      if (d && d->is_string()) used.insert(DigestHex(d->as_string()));
    }
  }
  UniqueFd ldir(open((dir_ + "/layers").c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
  if (!ldir) return;
  auto layers = ListDir(ldir.get(), "layers");
  if (!layers.ok()) return;
  for (const auto& hex : *layers) {
    if (!used.count(hex)) (void)sandbox::RemoveTree(fmt::format("{}/layers/{}", dir_, hex));
  }
}

Status ImageStore::Delete(const std::string& name) {
  if (!IsValidImageName(name)) return InvalidArgument(fmt::format("bad image name '{}'", name));
  std::lock_guard lock(mu_);
  std::string path = fmt::format("{}/manifests/{}.json", dir_, name);
  if (unlink(path.c_str()) != 0) {
    if (errno == ENOENT) return NotFound(fmt::format("image {} not found", name));
    return ErrnoError("remove " + path, errno);
  }
  CollectLayers();
  return Status::Ok();
}

Result<std::vector<std::string>> ImageStore::VerifiedLayerDirs(const std::string& name) {
  ASSIGN_OR_RETURN(ImageRecord m, Get(name));
  std::vector<std::string> dirs;
  for (const auto& l : m.layers) {
    auto rec = ReadLayer(l.digest);
    if (!rec.ok()) {
      if (rec.status().code() == Code::kNotFound)
        return IntegrityError(fmt::format("image {}: layer {} is missing", name, l.digest));
      return rec.status().WithContext("image " + name);
    }
    std::string root = LayerDir(l.digest) + "/root";
    UniqueFd fd(open(root.c_str(), O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC));
    if (!fd) return IntegrityError(fmt::format("image {}: layer {} has no tree", name, l.digest));
    ASSIGN_OR_RETURN(std::string stamp, StampTree(fd.get(), nullptr));
    if (stamp != rec->stamp)
      return IntegrityError(fmt::format(
          "image {}: layer {} was changed on disk after it was imported (re-import the image)",
          name, l.digest));
    dirs.push_back(root);
  }
  return dirs;
}

Result<ImageRecord> ImageStore::ImportTree(const std::string& name, const std::string& owner,
                                           int dir_fd, const std::vector<LayerRecord>& base_layers,
                                           const std::string& source,
                                           const std::string& source_digest,
                                           const ImageConfigInfo& config,
                                           const ImageProgressFn& progress) {
  if (!IsValidImageName(name)) return InvalidArgument(fmt::format("bad image name '{}'", name));
  if (Get(name).ok()) return Conflict(fmt::format("image {} exists already", name));
  {
    std::lock_guard lock(mu_);
    ++active_imports_;
  }
  ScopeGuard unpin([this] {
    std::lock_guard lock(mu_);
    // Pins stay until the last import running ends: a layer one of them installed is never
    // collected before its manifest names it.
    if (--active_imports_ == 0) {
      pinned_.clear();
      CollectLayers();
    }
  });
  ASSIGN_OR_RETURN(std::string tmp, MakeTmp("layer"));
  ScopeGuard remove_tmp([&] { (void)sandbox::RemoveTree(tmp); });
  RETURN_IF_ERROR(sandbox::MakeDir(tmp + "/root", 0755));
  UniqueFd root(open((tmp + "/root").c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
  if (!root) return ErrnoError("open " + tmp, errno);
  LayerSink sink(std::move(root));
  int64_t fed = 0, last = 0;
  TreeTarWriter writer([&](std::string_view d) -> Status {
    fed += static_cast<int64_t>(d.size());
    if (progress && fed - last > (16 << 20)) {
      last = fed;
      progress(0.5, fmt::format("captured {} MiB", fed >> 20));
    }
    return sink.Feed(d);
  });
  RETURN_IF_ERROR(writer.Write(dir_fd));
  RETURN_IF_ERROR(sink.reader.Finish());
  sink.writer.Finish();
  ImageRecord m;
  m.name = name;
  m.owner = owner;
  m.source = source;
  m.source_digest = source_digest;
  m.config = config;
  m.created_at = Now();
  m.layers = base_layers;
  {
    std::lock_guard lock(mu_);
    for (const auto& l : base_layers) pinned_.insert(l.digest);
  }
  ASSIGN_OR_RETURN(LayerRecord top, InstallLayer(tmp, "sha256:" + sink.sha.HexDigest(), sink.size,
                                                 sink.writer.entries()));
  remove_tmp.Cancel();
  m.layers.push_back(top);
  for (const auto& l : m.layers) RETURN_IF_ERROR(ReadLayer(l.digest).status());
  if (progress) progress(0.95, "writing the manifest");
  RETURN_IF_ERROR(WriteManifest(m));
  return m;
}

Result<ImageRecord> ImageStore::Import(const std::string& name, const std::string& owner,
                                       const std::string& path, std::string format,
                                       const ImageProgressFn& progress) {
  if (!IsValidImageName(name)) return InvalidArgument(fmt::format("bad image name '{}'", name));
  if (!IsValidImageFormat(format)) return InvalidArgument("unknown image format: " + format);
  if (Get(name).ok()) return Conflict(fmt::format("image {} exists already", name));
  {
    std::lock_guard lock(mu_);
    ++active_imports_;
  }
  ScopeGuard unpin([this] {
    std::lock_guard lock(mu_);
    // Pins stay until the last import running ends: a layer one of them installed is never
    // collected before its manifest names it.
    if (--active_imports_ == 0) {
      pinned_.clear();
      CollectLayers();
    }
  });
  UniqueFd archive(open(path.c_str(), O_RDONLY | O_CLOEXEC));
  if (!archive) return ErrnoError("open " + path, errno);
  struct stat ast;
  if (fstat(archive.get(), &ast) != 0) return ErrnoError("stat " + path, errno);

  // Which kind: a listing pass over the (decompressed) tar.
  if (format == "auto") {
    struct Names final : files::TarSink {
      std::set<std::string> names;
      Status OnEntry(const files::TarEntry& e) override {
        auto clean = CleanPath(e.path);
        if (clean.ok() && names.size() < 100000) names.insert(*clean);
        return Status::Ok();
      }
      Status OnData(std::string_view) override { return Status::Ok(); }
      Status OnEntryEnd() override { return Status::Ok(); }
    } names;
    files::TarReader reader(names);
    files::Decompressor dec([&](std::string_view d) { return reader.Feed(d); });
    RETURN_IF_ERROR(ReadAllChunks(archive.get(), path, [&](std::string_view d) {
                      return dec.Feed(d);
                    }).WithContext("read the archive"));
    RETURN_IF_ERROR(dec.Finish());
    RETURN_IF_ERROR(reader.Finish());
    if (lseek(archive.get(), 0, SEEK_SET) != 0) return ErrnoError("seek " + path, errno);
    if (names.names.count("oci-layout") && names.names.count("index.json"))
      format = "oci";
    else if (names.names.count("manifest.json") && !names.names.count("etc"))
      format = "docker-archive";
    else
      format = "rootfs";
  }
  if (progress) progress(0.02, fmt::format("importing a {} archive", format));

  ImageRecord m;
  m.name = name;
  m.owner = owner;
  m.source = format;
  m.created_at = Now();

  if (format == "rootfs") {
    ASSIGN_OR_RETURN(std::string tmp, MakeTmp("layer"));
    ScopeGuard remove_tmp([&] { (void)sandbox::RemoveTree(tmp); });
    RETURN_IF_ERROR(sandbox::MakeDir(tmp + "/root", 0755));
    UniqueFd root(open((tmp + "/root").c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
    if (!root) return ErrnoError("open " + tmp, errno);
    LayerSink sink(std::move(root));
    RETURN_IF_ERROR(FeedCompressed(archive.get(), "the rootfs", &sink, nullptr, progress, 0.05, 0.9,
                                   ast.st_size));
    ASSIGN_OR_RETURN(LayerRecord l, InstallLayer(tmp, "sha256:" + sink.sha.HexDigest(), sink.size,
                                                 sink.writer.entries()));
    remove_tmp.Cancel();
    m.layers.push_back(l);
    m.config.env = {"PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"};
  } else {
    // OCI layout and docker save: the archive's files (blobs, JSON) land in a scratch directory
    // first, with the same confined extractor the files API uses.
    ASSIGN_OR_RETURN(std::string scratch, MakeTmp("archive"));
    ScopeGuard remove_scratch([&] { (void)sandbox::RemoveTree(scratch); });
    {
      files::Root sroot;
      sroot.fd = UniqueFd(open(scratch.c_str(), O_PATH | O_DIRECTORY | O_CLOEXEC));
      if (!sroot.fd) return ErrnoError("open " + scratch, errno);
      UniqueFd dest(open(scratch.c_str(), O_PATH | O_DIRECTORY | O_CLOEXEC));
      files::ExtractLimits limits;
      limits.set_owners = false;
      limits.max_bytes = uint64_t{64} << 30;
      files::Extractor ex(sroot, std::move(dest), "/", limits);
      files::TarReader reader(ex);
      files::Decompressor dec([&](std::string_view d) { return reader.Feed(d); });
      RETURN_IF_ERROR(
          ReadAllChunks(archive.get(), path, [&](std::string_view d) { return dec.Feed(d); }));
      RETURN_IF_ERROR(dec.Finish());
      RETURN_IF_ERROR(reader.Finish().WithContext("the archive"));
      RETURN_IF_ERROR(ex.Finish());
    }
    if (progress) progress(0.1, "archive unpacked; checking digests");
    UniqueFd sdir(open(scratch.c_str(), O_PATH | O_DIRECTORY | O_CLOEXEC));
    if (!sdir) return ErrnoError("open " + scratch, errno);
    // Blob path → expected digest of the blob itself ("" when the format names none), with the
    // diff_id the uncompressed tar must have.
    struct LayerRef {
      std::string blob_path;
      std::string blob_digest;
      std::string diff_id;
    };
    std::vector<LayerRef> refs;
    std::vector<std::string> diff_ids;
    auto blob_path = [](const std::string& digest) { return "blobs/sha256/" + DigestHex(digest); };
    auto check_blob = [&](const std::string& p, const std::string& digest) -> Status {
      ASSIGN_OR_RETURN(UniqueFd fd, OpenInArchive(sdir.get(), p));
      ASSIGN_OR_RETURN(std::string got, HashFile(fd.get(), p));
      if ("sha256:" + got != digest)
        return InvalidArgument(fmt::format(
            "{} is tampered or corrupt: its sha256 is {}, its descriptor says {}; refused", p, got,
            digest));
      return Status::Ok();
    };
    if (format == "oci") {
      ASSIGN_OR_RETURN(json::object index, ReadJsonFile(sdir.get(), "index.json", 4 << 20));
      // Down through nested indexes to the first image manifest (linux/amd64 preferred).
      json::object manifest;
      std::string manifest_digest;
      for (int depth = 0;; ++depth) {
        const json::value* ms = index.if_contains("manifests");
        if (depth > 4 || !ms || !ms->is_array() || ms->as_array().empty())
          return InvalidArgument("index.json lists no manifests");
        const json::object* pick = nullptr;
        for (const auto& d : ms->as_array()) {
          if (!d.is_object()) continue;
          const json::value* plat = d.as_object().if_contains("platform");
          bool amd64 = plat && plat->is_object() && plat->as_object().if_contains("architecture") &&
                       plat->as_object().at("architecture") == "amd64";
          if (!pick || amd64) pick = &d.as_object();
          if (amd64) break;
        }
        if (!pick || !pick->if_contains("digest") || !pick->at("digest").is_string())
          return InvalidArgument("index.json: a manifest descriptor has no digest");
        std::string digest(pick->at("digest").as_string());
        if (DigestHex(digest).empty())
          return InvalidArgument("index.json: bad manifest digest " + digest);
        RETURN_IF_ERROR(check_blob(blob_path(digest), digest));
        ASSIGN_OR_RETURN(json::object next, ReadJsonFile(sdir.get(), blob_path(digest), 4 << 20));
        if (next.if_contains("manifests")) {
          index = std::move(next);
          continue;
        }
        manifest = std::move(next);
        manifest_digest = digest;
        break;
      }
      m.source_digest = manifest_digest;
      const json::value* cfg = manifest.if_contains("config");
      const json::value* layers = manifest.if_contains("layers");
      if (!cfg || !cfg->is_object() || !cfg->as_object().if_contains("digest") ||
          !cfg->as_object().at("digest").is_string() || !layers || !layers->is_array())
        return InvalidArgument("the image manifest has no config or layers");
      std::string cfg_digest(cfg->as_object().at("digest").as_string());
      if (DigestHex(cfg_digest).empty()) return InvalidArgument("bad config digest " + cfg_digest);
      RETURN_IF_ERROR(check_blob(blob_path(cfg_digest), cfg_digest));
      ASSIGN_OR_RETURN(json::object config,
                       ReadJsonFile(sdir.get(), blob_path(cfg_digest), 4 << 20));
      RETURN_IF_ERROR(ParseImageConfig(config, &m.config, &diff_ids));
      if (diff_ids.size() != layers->as_array().size())
        return InvalidArgument(fmt::format("the manifest has {} layers, the config {} diff_ids",
                                           layers->as_array().size(), diff_ids.size()));
      for (size_t i = 0; i < diff_ids.size(); ++i) {
        const json::value& d = layers->as_array()[i];
        if (!d.is_object() || !d.as_object().if_contains("digest") ||
            !d.as_object().at("digest").is_string())
          return InvalidArgument("a layer descriptor has no digest");
        std::string digest(d.as_object().at("digest").as_string());
        if (DigestHex(digest).empty()) return InvalidArgument("bad layer digest " + digest);
        refs.push_back({blob_path(digest), digest, diff_ids[i]});
      }
    } else {
      // docker save: manifest.json is a list; its first image is imported.
      ASSIGN_OR_RETURN(UniqueFd mfd, OpenInArchive(sdir.get(), "manifest.json"));
      std::string text;
      RETURN_IF_ERROR(ReadAllChunks(mfd.get(), "manifest.json", [&](std::string_view d) {
        text.append(d);
        return text.size() > (4 << 20) ? InvalidArgument("manifest.json is too large")
                                       : Status::Ok();
      }));
      boost::system::error_code ec;
      json::value v = json::parse(text, ec);
      if (ec || !v.is_array() || v.as_array().empty() || !v.as_array()[0].is_object())
        return InvalidArgument("manifest.json is not a list of images");
      const json::object& entry = v.as_array()[0].as_object();
      const json::value* cfgp = entry.if_contains("Config");
      const json::value* layers = entry.if_contains("Layers");
      if (!cfgp || !cfgp->is_string() || !layers || !layers->is_array())
        return InvalidArgument("manifest.json: the image has no Config or Layers");
      std::string cfg_path(cfgp->as_string());
      // The config is named by its digest ("<hex>.json" or "blobs/sha256/<hex>").
      std::string base = cfg_path.substr(cfg_path.rfind('/') + 1);
      if (base.size() > 5 && base.substr(base.size() - 5) == ".json")
        base = base.substr(0, base.size() - 5);
      if (!DigestHex("sha256:" + base).empty()) {
        RETURN_IF_ERROR(check_blob(cfg_path, "sha256:" + base));
        m.source_digest = "sha256:" + base;
      }
      ASSIGN_OR_RETURN(json::object config, ReadJsonFile(sdir.get(), cfg_path, 4 << 20));
      RETURN_IF_ERROR(ParseImageConfig(config, &m.config, &diff_ids));
      if (diff_ids.size() != layers->as_array().size())
        return InvalidArgument(fmt::format("manifest.json has {} layers, the config {} diff_ids",
                                           layers->as_array().size(), diff_ids.size()));
      for (size_t i = 0; i < diff_ids.size(); ++i) {
        if (!layers->as_array()[i].is_string())
          return InvalidArgument("manifest.json: a layer is not a path");
        refs.push_back({std::string(layers->as_array()[i].as_string()), "", diff_ids[i]});
      }
    }
    for (size_t i = 0; i < refs.size(); ++i) {
      const LayerRef& ref = refs[i];
      const double from = 0.1 + 0.85 * static_cast<double>(i) / static_cast<double>(refs.size());
      const double to = 0.1 + 0.85 * static_cast<double>(i + 1) / static_cast<double>(refs.size());
      if (!ref.blob_digest.empty()) RETURN_IF_ERROR(check_blob(ref.blob_path, ref.blob_digest));
      if (auto have = ReadLayer(ref.diff_id); have.ok()) {
        // Stored already (by another image): shared, not extracted again. Its blob was checked
        // above; a docker-save layer (named by no digest) is hashed to check its diff_id.
        if (ref.blob_digest.empty()) {
          ASSIGN_OR_RETURN(UniqueFd fd, OpenInArchive(sdir.get(), ref.blob_path));
          Sha256 sha;
          files::Decompressor dec([&](std::string_view d) {
            sha.Update(d);
            return Status::Ok();
          });
          RETURN_IF_ERROR(ReadAllChunks(fd.get(), ref.blob_path,
                                        [&](std::string_view d) { return dec.Feed(d); }));
          RETURN_IF_ERROR(dec.Finish());
          if ("sha256:" + sha.HexDigest() != ref.diff_id)
            return InvalidArgument(fmt::format(
                "layer {} is tampered or corrupt: its content does not match diff_id {}; refused",
                ref.blob_path, ref.diff_id));
        }
        std::lock_guard lock(mu_);
        pinned_.insert(ref.diff_id);
        m.layers.push_back(*have);
        if (progress) progress(to, fmt::format("layer {} is stored already", ref.diff_id));
        continue;
      }
      ASSIGN_OR_RETURN(UniqueFd fd, OpenInArchive(sdir.get(), ref.blob_path));
      struct stat st;
      if (fstat(fd.get(), &st) != 0) return ErrnoError("stat " + ref.blob_path, errno);
      ASSIGN_OR_RETURN(std::string tmp, MakeTmp("layer"));
      ScopeGuard remove_tmp([&] { (void)sandbox::RemoveTree(tmp); });
      RETURN_IF_ERROR(sandbox::MakeDir(tmp + "/root", 0755));
      UniqueFd root(open((tmp + "/root").c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
      if (!root) return ErrnoError("open " + tmp, errno);
      LayerSink sink(std::move(root));
      RETURN_IF_ERROR(
          FeedCompressed(fd.get(), ref.blob_path, &sink, nullptr, progress, from, to, st.st_size)
              .WithContext("layer " + ref.blob_path));
      std::string got = "sha256:" + sink.sha.HexDigest();
      if (got != ref.diff_id)
        return InvalidArgument(fmt::format(
            "layer {} is tampered or corrupt: its content's sha256 is {}, the config's diff_id "
            "{}; refused",
            ref.blob_path, got, ref.diff_id));
      ASSIGN_OR_RETURN(LayerRecord l, InstallLayer(tmp, got, sink.size, sink.writer.entries()));
      remove_tmp.Cancel();
      m.layers.push_back(l);
    }
    if (m.layers.empty()) return InvalidArgument("the image has no layers");
  }
  if (progress) progress(0.97, "writing the manifest");
  RETURN_IF_ERROR(WriteManifest(m));
  if (progress) progress(1, "imported");
  return m;
}

}  // namespace hutch::drivers::local
