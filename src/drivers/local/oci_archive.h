// Reading an image archive (image_store.h's Import): which kind it is, its files unpacked to a
// scratch directory, and the image it holds, from an OCI layout's index and manifests or from
// docker save's manifest.json, with every blob that a digest names checked against it.
#pragma once

#include <string>
#include <string_view>
#include <vector>

#include "common/json.h"
#include "common/status.h"
#include "common/unique_fd.h"
#include "drivers/local/image_store.h"

namespace hutch::drivers::local {

// A layer of an archive: where its blob is (relative to the scratch directory), the digest of
// the blob itself ("" when the format names none), and the diff_id its uncompressed tar must
// have.
struct LayerRef {
  std::string blob_path;
  std::string blob_digest;
  std::string diff_id;
};

// What an OCI layout or a docker save archive holds, checked as far as its JSON goes.
struct ArchiveImage {
  std::string source_digest;  // the image manifest's (or the docker config's) digest
  ImageConfigInfo config;
  std::vector<LayerRef> layers;  // bottom first
};

// "sha256:<64 hex>" → "<hex>"; "" when it is not one.
std::string DigestHex(std::string_view digest);
// A JSON list of strings (absent or null: none); false when it is something else.
bool JsonStrings(const json::value* v, std::vector<std::string>* out);

// "oci", "docker-archive" or "rootfs", from a listing pass over the (decompressed) tar at `fd`;
// `fd` is rewound after it.
Result<std::string> DetectArchiveFormat(int fd, const std::string& path);
// Extracts the archive at `fd` into `scratch` with the confined extractor the files API uses.
Status UnpackArchive(int fd, const std::string& path, const std::string& scratch);

// A file of the unpacked archive at `dir_fd`, opened without leaving it.
Result<UniqueFd> OpenInArchive(int dir_fd, const std::string& path);
// Checks that the file at `path` has the sha256 `digest` names ("sha256:<hex>").
Status CheckBlob(int dir_fd, const std::string& path, const std::string& digest);
// Checks a layer blob named by no digest (docker save) by its uncompressed content's diff_id.
Status CheckLayerContent(int dir_fd, const LayerRef& ref);

// The image of an unpacked OCI layout: down through nested indexes to the first image manifest
// (linux/amd64 preferred), its config and layers.
Result<ArchiveImage> ReadOciLayout(int dir_fd);
// The first image of an unpacked docker save archive.
Result<ArchiveImage> ReadDockerArchive(int dir_fd);

}  // namespace hutch::drivers::local
