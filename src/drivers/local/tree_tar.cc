#include "drivers/local/tree_tar.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/xattr.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <map>
#include <string>
#include <utility>

#include <fmt/format.h>

#include "drivers/local/layer_apply.h"
#include "drivers/local/tree_stamp.h"
#include "files/tar.h"

namespace hutch::drivers::local {

namespace {

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

}  // namespace

Status WriteTreeAsTar(int dir_fd, std::function<Status(std::string_view)> out) {
  return TreeTarWriter(std::move(out)).Write(dir_fd);
}

}  // namespace hutch::drivers::local
