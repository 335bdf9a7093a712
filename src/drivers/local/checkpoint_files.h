// Checkpoints of a session's writable layer as files: an image (a sparse copy of the session's
// disk image, docs/server.md "Checkpoints") and a manifest beside it that carries the image's
// digest and is itself signed with a key only the server reads.
//
//   data_dir/checkpoints/key                     32 random bytes, 0600, made on first use
//   data_dir/checkpoints/<session id>/<name>.img the disk image (sparse: holes stay holes)
//   data_dir/checkpoints/<session id>/<name>.json the manifest; its presence makes the checkpoint
//
// The digest is SHA-256 over the image's data extents only (for each one, in order: its offset
// and length as 16 little-endian bytes, then its bytes), so hashing costs what the session
// wrote, not the disk's size — and a byte written into a hole changes the extent list and with
// it the digest. The manifest's `mac` is HMAC-SHA256(key, every other field): an image swapped
// together with a manifest whose digest was recomputed is refused as well.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "common/status.h"
#include "common/time.h"

namespace hutch::drivers::local {

struct ImageDigest {
  std::string sha256;      // lowercase hex
  int64_t data_bytes = 0;  // bytes in data extents
  int64_t extents = 0;
};

struct CheckpointManifest {
  int version = 1;
  std::string session_id;  // the session it was taken of
  std::string name;
  int64_t size_bytes = 0;  // the image's apparent size: the disk's size
  ImageDigest digest;
  TimePoint created_at;
  int64_t freeze_ms = 0;    // how long the session's processes stood still for it
  int64_t duration_ms = 0;  // the whole capture, hashing included
};

// Copies `src` into the new, empty file `dst`: a reflink of the whole file (FICLONE) where the
// filesystem shares blocks (xfs, btrfs), else its data extents with copy_file_range (which
// reflinks too where it can), leaving holes as holes. `what` names the copy in errors.
Status CopyImage(int src, int dst, const std::string& what);

// The digest of an image's data extents (see the file comment).
Result<ImageDigest> DigestImage(int fd, const std::string& what);

// The manifest as JSON with its mac; `key` is the server's checkpoint key.
std::string EncodeManifest(const CheckpointManifest& m, const std::string& key);
// Parses a manifest and checks its mac: a manifest changed by hand, or signed with another key,
// is refused (conflict, "integrity").
Result<CheckpointManifest> DecodeManifest(std::string_view text, const std::string& key);

// A checkpoint or session name: a DNS label (1–63 of [a-z0-9-], no '-' at the ends). Internal
// checkpoints (forks) start with '.'; IsValidCheckpointFileName accepts those too.
bool IsValidCheckpointFileName(std::string_view name);

// Reads data_dir/checkpoints/key, making it (32 bytes from getrandom) when it is missing.
Result<std::string> LoadOrMakeCheckpointKey(const std::string& checkpoints_dir);

}  // namespace hutch::drivers::local
