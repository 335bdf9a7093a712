// Tar archives of trees inside a sandbox, both ways, streamed.
//
// TreeTar walks a file or a directory tree through fds (never descending through symlinks or
// into kernel filesystems) and yields the tar in pieces. Extractor is a TarSink that creates
// the entries below a destination directory; every entry's parent is resolved beneath that
// directory with RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS, so neither "../", absolute names nor a
// symlink planted by an earlier entry can make a later one land elsewhere. Device nodes, fifos
// and other special entries are refused; setuid and setgid bits are dropped; the total size and
// the number of entries are bounded (payload_too_large past either).
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "common/status.h"
#include "common/unique_fd.h"
#include "files/resolve.h"
#include "files/tar.h"

namespace hutch::files {

class TreeTar {
 public:
  // `path` names a file or a directory (a final symlink is followed inside the root). Entries are
  // named after its last component ("work/a.txt" for /work), the root's without a prefix.
  static Result<std::unique_ptr<TreeTar>> Open(const Root& root, std::string_view path);
  ~TreeTar();
  // The next piece of the archive (about `max_bytes`), or nullopt after the trailer.
  Result<std::optional<std::string>> Next(size_t max_bytes);
  uint64_t entries() const { return entries_; }

 private:
  struct Frame;
  explicit TreeTar(const Root& root);
  Status EmitEntry(Frame& frame, const std::string& name, std::string* out);
  Status EmitFileData(std::string* out, size_t max_bytes);

  const Root& root_;
  std::vector<std::unique_ptr<Frame>> stack_;
  // The regular file whose data is being emitted.
  UniqueFd file_;
  uint64_t file_left_ = 0;
  uint64_t file_size_ = 0;
  std::optional<std::string> single_;  // Open() of a file: its header, emitted first
  bool done_ = false;
  uint64_t entries_ = 0;
};

struct ExtractLimits {
  uint64_t max_bytes = uint64_t{8} << 30;  // total size of the files' data
  uint64_t max_entries = 200000;
  // Give entries the archive's owners (mapped into the sandbox). Off for a client extracting as
  // an ordinary user, who cannot chown: then entries belong to whoever extracts, as with tar.
  bool set_owners = true;
};

class Extractor final : public TarSink {
 public:
  // Extracts below `dest` (a directory fd, O_PATH is enough); `dest_shown` is its path inside the
  // sandbox, for messages. New entries are owned by the archive's ids mapped into the sandbox
  // (ids above 65535 become the sandbox's root).
  Extractor(const Root& root, UniqueFd dest, std::string dest_shown, ExtractLimits limits);
  ~Extractor() override;

  Status OnEntry(const TarEntry& entry) override;
  Status OnData(std::string_view data) override;
  Status OnEntryEnd() override;
  // Sets the directories' times (after their contents were written). Call once at the end.
  Status Finish();

  uint64_t files() const { return files_; }
  uint64_t bytes() const { return bytes_; }
  uint64_t entries() const { return entries_; }

 private:
  Result<UniqueFd> ParentOf(const std::string& rel, std::string* name);
  Status ClearForNew(int parent, const std::string& name, const std::string& shown, bool keep_dir);

  const Root& root_;
  UniqueFd dest_;
  std::string dest_shown_;
  ExtractLimits limits_;
  uint64_t entries_ = 0, files_ = 0, bytes_ = 0;
  // The file being written.
  UniqueFd file_;
  UniqueFd file_parent_;
  std::string file_name_, file_shown_;
  TarEntry file_entry_;
  struct DirTime {
    std::string rel;
    int64_t mtime;
  };
  std::vector<DirTime> dir_times_;
};

}  // namespace hutch::files
