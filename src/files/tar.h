// The tar format, both ways: header encoding (ustar, with a pax extended header in front when a
// path, link target, size or id does not fit ustar's fields) and a streaming reader that takes
// the archive in pieces of any size and hands entries and their data to a sink. The reader
// understands ustar, pax ('x', 'g') and GNU long names ('L', 'K'); it holds at most one header
// plus kMaxMetaBytes of extended metadata in memory, whatever the archive's size.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

#include "common/status.h"

namespace hutch::files {

inline constexpr size_t kTarBlock = 512;
// The longest pax or GNU long-name record the reader accepts.
inline constexpr size_t kMaxMetaBytes = 64 * 1024;

struct TarEntry {
  std::string path;  // as stored ("dir/file", pax path or GNU long name when present)
  char type = '0';   // '0' file, '1' hard link, '2' symlink, '3' char, '4' block, '5' dir, '6' fifo
  std::string link;  // link target of '1' and '2'
  uint64_t size = 0;  // data bytes that follow (files only)
  uint32_t mode = 0;  // 07777 bits
  uint32_t uid = 0;
  uint32_t gid = 0;
  int64_t mtime = 0;  // seconds since the epoch
};

// The header block(s) of `e`: a pax header first when needed, then the ustar header.
std::string EncodeTarHeader(const TarEntry& e);
// Zero bytes after `size` bytes of data up to the next block.
inline size_t TarPadding(uint64_t size) { return (kTarBlock - size % kTarBlock) % kTarBlock; }
// The end of an archive: two zero blocks.
std::string TarTrailer();

// What the reader calls, in order: OnEntry, OnData (zero or more times, together exactly
// entry.size bytes), OnEntryEnd; per entry. An error stops the reading and is returned by Feed.
class TarSink {
 public:
  virtual ~TarSink() = default;
  virtual Status OnEntry(const TarEntry& entry) = 0;
  virtual Status OnData(std::string_view data) = 0;
  virtual Status OnEntryEnd() = 0;
};

class TarReader {
 public:
  explicit TarReader(TarSink& sink) : sink_(sink) {}
  // Takes the next piece of the archive. invalid_argument for a malformed archive (bad checksum,
  // bad number, oversized metadata), or the sink's error.
  Status Feed(std::string_view data);
  // The input ended: invalid_argument when it ended inside an entry.
  Status Finish();
  bool ended() const { return state_ == State::kEnd; }
  uint64_t entries() const { return entries_; }

 private:
  enum class State { kHeader, kData, kPadding, kMeta, kEnd };
  Status OnHeaderBlock(std::string_view block);
  Status ApplyPax(std::string_view records, bool global);
  Status EndEntry();

  TarSink& sink_;
  State state_ = State::kHeader;
  std::string block_;       // a header block being assembled
  uint64_t remaining_ = 0;  // data bytes (kData, kMeta) or padding bytes (kPadding) left
  uint64_t pad_after_ = 0;  // padding after the current data
  char meta_type_ = 0;      // 'x', 'g', 'L', 'K' while in kMeta
  std::string meta_;        // kMeta data
  bool in_entry_ = false;   // OnEntry called, OnEntryEnd not yet
  int zero_blocks_ = 0;
  uint64_t entries_ = 0;
  // Overrides for the next entry, from pax 'x' or GNU 'L'/'K'.
  std::string next_path_, next_link_;
  bool has_next_size_ = false;
  uint64_t next_size_ = 0;
  bool has_next_uid_ = false, has_next_gid_ = false, has_next_mtime_ = false;
  uint32_t next_uid_ = 0, next_gid_ = 0;
  int64_t next_mtime_ = 0;
};

}  // namespace hutch::files
