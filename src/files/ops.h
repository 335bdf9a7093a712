// File operations inside a sandbox's root (resolve.h): stat, list, read, atomic write, delete,
// mkdir, move. Each resolves its path once, with the kernel, and changes things only through
// *at() calls on the fd of the resolved parent. Blocking: call off network threads.
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <vector>

#include "common/status.h"
#include "common/unique_fd.h"
#include "files/resolve.h"

namespace hutch::files {

enum class FileType { kFile, kDirectory, kSymlink, kFifo, kSocket, kCharDevice, kBlockDevice };
std::string_view ToString(FileType t);
FileType TypeOf(mode_t mode);

// A host id as the sandbox sees it (65534, "nobody", when it is not mapped into it).
inline uint32_t InsideId(uint32_t host_id, uint32_t base) {
  return host_id >= base && host_id - base <= 65535 ? host_id - base : 65534;
}
// The host id for an id inside the sandbox (ids above 65535 become the sandbox's root).
inline uint32_t HostId(uint32_t inside_id, uint32_t base) {
  return base + (inside_id <= 65535 ? inside_id : 0);
}

// Names in a directory (an O_RDONLY fd, not consumed) other than "." and "..", sorted.
Result<std::vector<std::string>> ReadDirNames(int dir_fd, std::string_view shown);

// What GET …/files (a listing) and GET …/files/stat answer per entry.
struct Entry {
  std::string name;
  std::string path;  // inside the sandbox, absolute
  FileType type = FileType::kFile;
  uint64_t size = 0;
  uint32_t mode = 0;  // permission bits incl. setuid/setgid/sticky (07777)
  uint32_t uid = 0;   // as seen inside the sandbox
  uint32_t gid = 0;
  int64_t mtime_ns = 0;  // since the Unix epoch
  std::string target;    // symlinks: what they point to, as stored
};

// Entry of `name` in directory `dir_fd` (not following a final symlink).
Result<Entry> StatAt(const Root& root, int dir_fd, const std::string& name,
                     const std::string& shown_path);
// The entry `path` names; a final symlink is reported, not followed.
Result<Entry> Stat(const Root& root, std::string_view path);

struct Listing {
  std::vector<Entry> entries;  // sorted by path; directories before their contents
  bool truncated = false;      // more than max_entries
};
// Lists directory `path` (following a final symlink, like ls); with depth > 1 also the
// directories below, down to `depth` levels. Never descends through symlinks or into kernel
// filesystems. conflict when `path` is not a directory.
Result<Listing> List(const Root& root, std::string_view path, int depth, size_t max_entries);

// A regular file opened for reading (final symlinks followed inside the root). conflict for a
// directory, invalid_argument for devices, fifos and sockets (reading them could block or
// have effects).
struct OpenedFile {
  UniqueFd fd;
  uint64_t size = 0;
};
Result<OpenedFile> OpenForRead(const Root& root, std::string_view path);

// Reads up to n bytes of the request body into buf; 0 at its end.
using ReadFn = std::function<Result<size_t>(char* buf, size_t n)>;

struct WriteOptions {
  std::optional<uint32_t> mode;  // default: the replaced file's mode, else 0644
  bool parents = false;          // create missing parent directories (0755)
};
struct WriteResult {
  uint64_t bytes = 0;
  bool created = false;  // no file was there before
};
// Writes what `read` yields to `path`, atomically: into a temporary file beside it, then
// renamed over the target. On any failure (a full disk, the client going away) the temporary
// file is removed and the target is untouched. New files are owned by the sandbox's root.
Result<WriteResult> WriteFile(const Root& root, std::string_view path, const WriteOptions& opts,
                              const ReadFn& read);

// WriteFile in two steps, for a writer that is not this thread: BeginWrite makes the temporary
// file (owned and placed as WriteFile does); its bytes are written through fd() or Append();
// Commit() sets the mode and renames it over the target. Destroyed uncommitted, the temporary
// file is removed and the target is untouched.
class PendingWrite {
 public:
  PendingWrite(PendingWrite&& o) noexcept;
  PendingWrite& operator=(PendingWrite&&) = delete;
  ~PendingWrite();
  // The temporary file, open for writing.
  int fd() const { return out_.get(); }
  Status Append(std::string_view data);
  // The size is what the file holds by then.
  Result<WriteResult> Commit();

 private:
  friend Result<PendingWrite> BeginWrite(const Root&, std::string_view, const WriteOptions&);
  PendingWrite() = default;
  void Abandon();

  UniqueFd parent_;
  UniqueFd out_;
  std::string name_, tmp_, shown_;
  uint32_t mode_ = 0644;
  bool created_ = false;
  // The sandbox root's host ids, to act as when renaming and removing (ActAsSandboxRoot).
  uint32_t root_uid_ = 0, root_gid_ = 0;
};
Result<PendingWrite> BeginWrite(const Root& root, std::string_view path, const WriteOptions& opts);

// Removes a file, symlink or empty directory; with `recursive` a whole tree (never crossing into
// another mount: conflict). conflict for a non-empty directory without `recursive`.
Status Remove(const Root& root, std::string_view path, bool recursive);

// Creates directory `path` (and its parents with `parents`, where an existing directory is no
// error). Owned by the sandbox's root.
Status MakeDir(const Root& root, std::string_view path, uint32_t mode, bool parents);

// Renames `from` to `to`; with !overwrite, conflict if `to` exists.
Status Move(const Root& root, std::string_view from, std::string_view to, bool overwrite);

// The directory `path` names, opened O_PATH; with `create`, created with its parents first.
Result<UniqueFd> OpenDir(const Root& root, std::string_view path, bool create);

}  // namespace hutch::files
