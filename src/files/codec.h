// Streaming gzip (zlib) and zstd, both ways, for archives. Output is handed on in pieces of at
// most kCodecChunk bytes as it is produced, so a small input that inflates to gigabytes never
// sits in memory: whoever receives the pieces enforces size limits.
#pragma once

#include <functional>
#include <memory>
#include <string>
#include <string_view>

#include "common/status.h"

namespace hutch::files {

inline constexpr size_t kCodecChunk = 256 * 1024;

enum class Compression { kNone, kGzip, kZstd };
// "none" | "" → kNone, "gzip" | "gz", "zstd" | "zst"; invalid_argument otherwise.
Result<Compression> ParseCompression(std::string_view name);
std::string_view ContentType(Compression c);

using ChunkFn = std::function<Status(std::string_view)>;

class Compressor {
 public:
  virtual ~Compressor() = default;
  // Compresses `in`, appending what is ready to *out.
  virtual Status Write(std::string_view in, std::string* out) = 0;
  // Flushes the rest and the format's trailer into *out.
  virtual Status Finish(std::string* out) = 0;
};
Result<std::unique_ptr<Compressor>> MakeCompressor(Compression c);

// Detects the format from the first bytes (gzip 1f 8b, zstd 28 b5 2f fd, else plain) and
// decompresses, multi-member gzip and multi-frame zstd included.
class Decompressor {
 public:
  explicit Decompressor(ChunkFn out);
  ~Decompressor();
  Status Feed(std::string_view in);
  // invalid_argument when the compressed stream was cut short.
  Status Finish();

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace hutch::files
