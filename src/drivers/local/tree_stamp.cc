#include "drivers/local/tree_stamp.h"

#include <dirent.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <string_view>

#include "common/sha256.h"
#include "common/unique_fd.h"

namespace hutch::drivers::local {

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

namespace {

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

}  // namespace

Result<std::string> StampTree(int dir_fd, int64_t* entries) {
  Sha256 sha;
  int64_t n = 0;
  RETURN_IF_ERROR(StampDir(dir_fd, "", &sha, &n));
  if (entries) *entries = n;
  return sha.HexDigest();
}

}  // namespace hutch::drivers::local
