// Applying a layer: a tar stream (plain, gzip or zstd) extracted into an empty directory in
// overlayfs' lower format (image_store.h's file comment: whiteouts and opaque directories),
// hashed as it goes so the store can name the layer by its digest.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <string_view>

#include "common/sha256.h"
#include "common/status.h"
#include "common/unique_fd.h"
#include "drivers/local/image_store.h"

namespace hutch::files {
class TarReader;
}  // namespace hutch::files

namespace hutch::drivers::local {

// OCI's whiteout names.
inline constexpr std::string_view kWhiteoutPrefix = ".wh.";
inline constexpr std::string_view kOpaqueMarker = ".wh..wh..opq";
// How much is read or buffered at a time.
inline constexpr size_t kChunk = 1 << 20;

// Reads the file at `fd` to its end in pieces.
Status ReadAllChunks(int fd, const std::string& what,
                     const std::function<Status(std::string_view)>& fn);

// An entry path made relative and clean: no leading "/" or "./", no "." or empty components;
// ".." anywhere is refused.
Result<std::string> CleanPath(std::string_view path);

class LayerWriter;

// Feeds a layer's tar bytes to the extraction into `root` and hashes them.
class LayerSink {
 public:
  explicit LayerSink(UniqueFd root);
  ~LayerSink();  // out of line: LayerWriter is complete only in layer_apply.cc

  Status Feed(std::string_view data);
  // The tar has ended: checks that it is complete and gives the directories their times.
  Status Finish();
  // The digest of the tar's bytes (hex), how many bytes and entries it had.
  std::string HexDigest() { return sha_.HexDigest(); }
  int64_t size() const { return size_; }
  int64_t entries() const;

 private:
  std::unique_ptr<LayerWriter> writer_;
  std::unique_ptr<files::TarReader> reader_;
  Sha256 sha_;
  int64_t size_ = 0;
};

// Decompresses the layer tar at `fd` into `sink`, and Finish()es it; `blob_sha` (optional) gets
// the compressed bytes. Reports progress from `from` to `to` of `total` bytes.
Status FeedCompressed(int fd, const std::string& what, LayerSink* sink, Sha256* blob_sha,
                      const ImageProgressFn& progress, double from, double to, int64_t total);

}  // namespace hutch::drivers::local
