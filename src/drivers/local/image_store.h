// Images besides the built-in `host`: stacks of layers, each stored once by its digest and
// shared by every image that has it (docs/server.md, "Images").
//
//   data_dir/images/key                      32 random bytes, 0600: signs the manifests below
//   data_dir/images/layers/<hex>/root/       the layer as an overlay lower directory
//   data_dir/images/layers/<hex>/layer.json  its signed record; its presence makes the layer
//   data_dir/images/manifests/<name>.json    an image: its layers (bottom first), config, mac
//   data_dir/images/tmp/                     uploads and layers being extracted
//
// A layer's digest is the SHA-256 of its uncompressed tar (OCI's diff_id), so the same layer
// shipped gzip'd in one archive and plain in another is stored once. The tar is applied with
// the OCI rules turned into overlayfs' lower format: a `.wh.NAME` entry becomes a 0/0 character
// device NAME (a whiteout), `.wh..wh..opq` marks its directory opaque (the xattrs
// trusted.overlay.opaque and user.overlay.opaque, "y": the first for overlays mounted by host
// root, the second for those mounted in a user namespace with `userxattr`). Files keep the ids
// they have inside a sandbox (root is 0); sessions see them through an idmapped mount.
//
// Integrity (what is checked when):
//   - at import, every blob is hashed and compared with the digest that names it (OCI
//     manifests, configs and layers; docker-save configs and layers against the config's
//     diff_ids); a mismatch refuses the whole import and nothing of it is kept;
//   - layer.json and the image manifest carry HMAC-SHA256(key, every other field), so neither
//     can be edited or swapped by hand;
//   - layer.json holds a stamp of the extracted tree: SHA-256 over every entry's path, type,
//     mode, owner, size, mtime, ctime and inode number, in a fixed order. Writing, chmod, chown,
//     adding, removing or renaming anything in it changes a ctime or the entry list, and ctime
//     cannot be set back by a user. At session create every layer's stamp is recomputed (one
//     fstatat per entry: ~10 ms for a Debian minbase) and a mismatch refuses the session.
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <set>
#include <string>
#include <vector>

#include "common/status.h"
#include "common/time.h"

// The parts of the store: oci_archive.h reads an archive, layer_apply.h extracts a layer's tar,
// tree_stamp.h stamps an extracted tree, tree_tar.h writes a tree as a layer tar.
namespace hutch::drivers::local {

struct LayerRef;

// Progress of a long operation: fraction 0..1 and what it does now.
using ImageProgressFn = std::function<void(double fraction, const std::string& message)>;

struct LayerRecord {
  std::string digest;      // "sha256:<hex>" of the uncompressed tar
  int64_t size_bytes = 0;  // the uncompressed tar's size
  int64_t entries = 0;
  std::string stamp;  // see the file comment
  TimePoint created_at;
};

struct ImageConfigInfo {
  std::vector<std::string> env;  // "K=V"
  std::vector<std::string> cmd;  // entrypoint then cmd
  std::string workdir;
};

struct ImageRecord {
  int version = 1;
  std::string name;
  std::string owner;                // who imported, built or committed it
  std::string source;               // "rootfs", "oci", "docker-archive", "debootstrap", "commit"
  std::string source_digest;        // the OCI manifest's digest, or the committed session's id
  std::vector<LayerRecord> layers;  // bottom first
  ImageConfigInfo config;
  TimePoint created_at;
  int64_t size_bytes() const {
    int64_t n = 0;
    for (const auto& l : layers) n += l.size_bytes;
    return n;
  }
};

// What an archive is: "rootfs" (one tar, plain/gzip/zstd), "oci" (an OCI image layout as a
// tar), "docker-archive" (docker save). "auto" looks inside.
bool IsValidImageFormat(std::string_view format);
// Image names: 1–63 of [a-z0-9._-], starting with a letter or digit; "host" is built in.
bool IsValidImageName(std::string_view name);

class ImageStore {
 public:
  // `dir` is data_dir/images.
  static Result<std::unique_ptr<ImageStore>> Open(const std::string& dir);

  // Imports the archive at `path` as image `name` (conflict when it exists). Everything it
  // verifies is listed in the file comment; invalid_argument names what failed.
  Result<ImageRecord> Import(const std::string& name, const std::string& owner,
                             const std::string& path, std::string format,
                             const ImageProgressFn& progress);
  // A new image from the tree at `dir` (a rootfs, or a session's upper directory with overlay
  // whiteouts) as one layer on top of `base_layers`.
  Result<ImageRecord> ImportTree(const std::string& name, const std::string& owner, int dir_fd,
                                 const std::vector<LayerRecord>& base_layers,
                                 const std::string& source, const std::string& source_digest,
                                 const ImageConfigInfo& config, const ImageProgressFn& progress);

  // Reads and checks a manifest (its mac). not_found, or conflict when it fails the check.
  Result<ImageRecord> Get(const std::string& name);
  // Every image, by name; those failing their check are left out.
  Result<std::vector<ImageRecord>> List();
  // Removes the manifest and then the layers no other image has.
  Status Delete(const std::string& name);
  // The layer directories of `name`, bottom first, each verified against its signed record and
  // stamp (conflict, "integrity", when one fails).
  Result<std::vector<std::string>> VerifiedLayerDirs(const std::string& name);
  // Where uploads are spooled before an import.
  std::string TmpDir() const { return dir_ + "/tmp"; }
  std::string LayerDir(const std::string& digest) const;

 private:
  ImageStore(std::string dir, std::string key) : dir_(std::move(dir)), key_(std::move(key)) {}
  // Takes a layer extracted into tmp_dir (its root/ below) with the digest of its tar: moves it
  // into place (or drops it when the layer is there already) and signs it.
  Result<LayerRecord> InstallLayer(const std::string& tmp_dir, const std::string& digest,
                                   int64_t size, int64_t entries);
  // The signed record of a layer that is in place; not_found when it is not.
  Result<LayerRecord> ReadLayer(const std::string& digest);
  Status WriteManifest(const ImageRecord& image);
  // A fresh directory under tmp/.
  Result<std::string> MakeTmp(std::string_view what);
  // Removes layers no manifest names. REQUIRES: mu_ held.
  void CollectLayers();
  // An import runs from BeginImport to EndImport; the last one to end unpins and collects.
  void BeginImport();
  void EndImport();

  // A layer tar (plain, gzip or zstd) to extract into a new layer.
  struct LayerSource {
    int fd;
    std::string what;     // for messages: the rootfs, or the blob's path in the archive
    int64_t size;         // of the file, for progress
    std::string diff_id;  // what the tar's digest must be; "" for a rootfs (named by its own)
    double from, to;      // the progress range of the extraction
  };
  Result<LayerRecord> ExtractLayer(const LayerSource& source, const ImageProgressFn& progress);
  // A layer of an unpacked OCI or docker archive (at dir_fd): its blob checked, then shared
  // with the image that has it already or extracted.
  Result<LayerRecord> ImportArchiveLayer(int dir_fd, const LayerRef& ref,
                                         const ImageProgressFn& progress, double from, double to);
  // Everything of an OCI or docker archive at `fd` but the manifest, into *m.
  Status ImportArchive(int fd, const std::string& path, const std::string& format,
                       const ImageProgressFn& progress, ImageRecord* m);

  const std::string dir_;
  const std::string key_;
  // Installing and removing layers and manifests: a layer is never collected while an import
  // that shares it installs its image.
  std::mutex mu_;
  // Layers installed by imports still running (not named by a manifest yet). GUARDED_BY(mu_)
  std::set<std::string> pinned_;
  int active_imports_ = 0;  // GUARDED_BY(mu_)
};

}  // namespace hutch::drivers::local
