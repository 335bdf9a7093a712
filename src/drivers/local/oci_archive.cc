#include "drivers/local/oci_archive.h"

#include <fcntl.h>
#include <linux/openat2.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <cerrno>
#include <set>
#include <utility>

#include <fmt/format.h>

#include "common/sha256.h"
#include "drivers/local/layer_apply.h"
#include "files/archive.h"
#include "files/codec.h"
#include "files/resolve.h"
#include "files/tar.h"

namespace hutch::drivers::local {

// "sha256:<64 hex>" → "<hex>"; "" when it is not one.
std::string DigestHex(std::string_view digest) {
  if (digest.substr(0, 7) != "sha256:" || digest.size() != 7 + 64) return "";
  std::string_view hex = digest.substr(7);
  for (char c : hex)
    if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'))) return "";
  return std::string(hex);
}

bool JsonStrings(const json::value* v, std::vector<std::string>* out) {
  out->clear();
  if (!v || v->is_null()) return true;
  if (!v->is_array()) return false;
  for (const auto& e : v->as_array()) {
    if (!e.is_string()) return false;
    out->emplace_back(e.as_string());
  }
  return true;
}

Result<UniqueFd> OpenInArchive(int dir_fd, const std::string& path) {
  open_how how{};
  how.flags = O_RDONLY | O_CLOEXEC;
  how.resolve = RESOLVE_IN_ROOT | RESOLVE_NO_MAGICLINKS;
  UniqueFd fd(static_cast<int>(syscall(SYS_openat2, dir_fd, path.c_str(), &how, sizeof how)));
  if (!fd) return InvalidArgument(fmt::format("the archive has no {}", path));
  return fd;
}

namespace {

Result<json::object> ReadJsonFile(int dir_fd, const std::string& path, size_t max_bytes) {
  ASSIGN_OR_RETURN(UniqueFd fd, OpenInArchive(dir_fd, path));
  std::string text;
  RETURN_IF_ERROR(ReadAllChunks(fd.get(), path, [&](std::string_view d) -> Status {
    text.append(d);
    if (text.size() > max_bytes) return InvalidArgument(path + " is too large");
    return Status::Ok();
  }));
  auto o = ParseJsonObject(text);
  if (!o.ok()) return InvalidArgument(fmt::format("{}: {}", path, o.status().message()));
  return *o;
}

Result<std::string> HashFile(int fd, const std::string& what) {
  Sha256 sha;
  RETURN_IF_ERROR(ReadAllChunks(fd, what, [&](std::string_view d) -> Status {
    sha.Update(d);
    return Status::Ok();
  }));
  if (lseek(fd, 0, SEEK_SET) != 0) return ErrnoError("seek " + what, errno);
  return sha.HexDigest();
}

// OCI/docker image config → env, cmd, workdir, diff_ids.
Status ParseImageConfig(const json::object& cfg, ImageConfigInfo* info,
                        std::vector<std::string>* diff_ids) {
  if (const json::value* c = cfg.if_contains("config"); c && c->is_object()) {
    const json::object& co = c->as_object();
    std::vector<std::string> entry, cmd;
    if (!JsonStrings(co.if_contains("Env"), &info->env) ||
        !JsonStrings(co.if_contains("Entrypoint"), &entry) ||
        !JsonStrings(co.if_contains("Cmd"), &cmd))
      return InvalidArgument("the image config's Env, Entrypoint or Cmd is not a string list");
    info->cmd = entry;
    info->cmd.insert(info->cmd.end(), cmd.begin(), cmd.end());
    if (const json::value* w = co.if_contains("WorkingDir"); w && w->is_string())
      info->workdir = std::string(w->as_string());
  }
  const json::value* rootfs = cfg.if_contains("rootfs");
  if (!rootfs || !rootfs->is_object() ||
      !JsonStrings(rootfs->as_object().if_contains("diff_ids"), diff_ids))
    return InvalidArgument("the image config has no rootfs.diff_ids");
  for (const auto& d : *diff_ids)
    if (DigestHex(d).empty()) return InvalidArgument("bad diff_id in the image config: " + d);
  return Status::Ok();
}

}  // namespace

Result<std::string> DetectArchiveFormat(int fd, const std::string& path) {
  struct Names final : files::TarSink {
    std::set<std::string> names;
    Status OnEntry(const files::TarEntry& e) override {
      auto clean = CleanPath(e.path);
      if (clean.ok() && names.size() < 100000) names.insert(*clean);
      return Status::Ok();
    }
    Status OnData(std::string_view) override { return Status::Ok(); }
    Status OnEntryEnd() override { return Status::Ok(); }
  } names;
  files::TarReader reader(names);
  files::Decompressor dec([&](std::string_view d) { return reader.Feed(d); });
  RETURN_IF_ERROR(ReadAllChunks(fd, path, [&](std::string_view d) {
                    return dec.Feed(d);
                  }).WithContext("read the archive"));
  RETURN_IF_ERROR(dec.Finish());
  RETURN_IF_ERROR(reader.Finish());
  if (lseek(fd, 0, SEEK_SET) != 0) return ErrnoError("seek " + path, errno);
  if (names.names.count("oci-layout") && names.names.count("index.json")) return std::string("oci");
  if (names.names.count("manifest.json") && !names.names.count("etc"))
    return std::string("docker-archive");
  return std::string("rootfs");
}

Status UnpackArchive(int fd, const std::string& path, const std::string& scratch) {
  files::Root sroot;
  sroot.fd = UniqueFd(open(scratch.c_str(), O_PATH | O_DIRECTORY | O_CLOEXEC));
  if (!sroot.fd) return ErrnoError("open " + scratch, errno);
  UniqueFd dest(open(scratch.c_str(), O_PATH | O_DIRECTORY | O_CLOEXEC));
  files::ExtractLimits limits;
  limits.set_owners = false;
  limits.max_bytes = uint64_t{64} << 30;
  files::Extractor ex(sroot, std::move(dest), "/", limits);
  files::TarReader reader(ex);
  files::Decompressor dec([&](std::string_view d) { return reader.Feed(d); });
  RETURN_IF_ERROR(ReadAllChunks(fd, path, [&](std::string_view d) { return dec.Feed(d); }));
  RETURN_IF_ERROR(dec.Finish());
  RETURN_IF_ERROR(reader.Finish().WithContext("the archive"));
  return ex.Finish();
}

Status CheckBlob(int dir_fd, const std::string& path, const std::string& digest) {
  ASSIGN_OR_RETURN(UniqueFd fd, OpenInArchive(dir_fd, path));
  ASSIGN_OR_RETURN(std::string got, HashFile(fd.get(), path));
  if ("sha256:" + got != digest)
    return InvalidArgument(
        fmt::format("{} is tampered or corrupt: its sha256 is {}, its descriptor says {}; refused",
                    path, got, digest));
  return Status::Ok();
}

Status CheckLayerContent(int dir_fd, const LayerRef& ref) {
  ASSIGN_OR_RETURN(UniqueFd fd, OpenInArchive(dir_fd, ref.blob_path));
  Sha256 sha;
  files::Decompressor dec([&](std::string_view d) {
    sha.Update(d);
    return Status::Ok();
  });
  RETURN_IF_ERROR(
      ReadAllChunks(fd.get(), ref.blob_path, [&](std::string_view d) { return dec.Feed(d); }));
  RETURN_IF_ERROR(dec.Finish());
  if ("sha256:" + sha.HexDigest() != ref.diff_id)
    return InvalidArgument(fmt::format(
        "layer {} is tampered or corrupt: its content does not match diff_id {}; refused",
        ref.blob_path, ref.diff_id));
  return Status::Ok();
}

namespace {

std::string BlobPath(const std::string& digest) { return "blobs/sha256/" + DigestHex(digest); }

// Down through nested indexes to the first image manifest (linux/amd64 preferred); its digest
// goes to *digest_out.
Result<json::object> FindOciManifest(int dir_fd, std::string* digest_out) {
  ASSIGN_OR_RETURN(json::object index, ReadJsonFile(dir_fd, "index.json", 4 << 20));
  for (int depth = 0;; ++depth) {
    const json::value* ms = index.if_contains("manifests");
    if (depth > 4 || !ms || !ms->is_array() || ms->as_array().empty())
      return InvalidArgument("index.json lists no manifests");
    const json::object* pick = nullptr;
    for (const auto& d : ms->as_array()) {
      if (!d.is_object()) continue;
      const json::value* plat = d.as_object().if_contains("platform");
      bool amd64 = plat && plat->is_object() && plat->as_object().if_contains("architecture") &&
                   plat->as_object().at("architecture") == "amd64";
      if (!pick || amd64) pick = &d.as_object();
      if (amd64) break;
    }
    if (!pick || !pick->if_contains("digest") || !pick->at("digest").is_string())
      return InvalidArgument("index.json: a manifest descriptor has no digest");
    std::string digest(pick->at("digest").as_string());
    if (DigestHex(digest).empty())
      return InvalidArgument("index.json: bad manifest digest " + digest);
    RETURN_IF_ERROR(CheckBlob(dir_fd, BlobPath(digest), digest));
    ASSIGN_OR_RETURN(json::object next, ReadJsonFile(dir_fd, BlobPath(digest), 4 << 20));
    if (next.if_contains("manifests")) {
      index = std::move(next);
      continue;
    }
    *digest_out = digest;
    return next;
  }
}

// The image config at `path`: env, cmd and workdir into *config, and its diff_ids, which must be
// as many as the `layer_count` layers of the manifest (`manifest` names it in the message).
Result<std::vector<std::string>> ReadImageConfig(int dir_fd, const std::string& path,
                                                 size_t layer_count, std::string_view manifest,
                                                 ImageConfigInfo* config) {
  ASSIGN_OR_RETURN(json::object cfg, ReadJsonFile(dir_fd, path, 4 << 20));
  std::vector<std::string> diff_ids;
  RETURN_IF_ERROR(ParseImageConfig(cfg, config, &diff_ids));
  if (diff_ids.size() != layer_count)
    return InvalidArgument(fmt::format("{} has {} layers, the config {} diff_ids", manifest,
                                       layer_count, diff_ids.size()));
  return diff_ids;
}

}  // namespace

Result<ArchiveImage> ReadOciLayout(int dir_fd) {
  ArchiveImage image;
  ASSIGN_OR_RETURN(json::object manifest, FindOciManifest(dir_fd, &image.source_digest));
  const json::value* cfg = manifest.if_contains("config");
  const json::value* layers = manifest.if_contains("layers");
  if (!cfg || !cfg->is_object() || !cfg->as_object().if_contains("digest") ||
      !cfg->as_object().at("digest").is_string() || !layers || !layers->is_array())
    return InvalidArgument("the image manifest has no config or layers");
  std::string cfg_digest(cfg->as_object().at("digest").as_string());
  if (DigestHex(cfg_digest).empty()) return InvalidArgument("bad config digest " + cfg_digest);
  RETURN_IF_ERROR(CheckBlob(dir_fd, BlobPath(cfg_digest), cfg_digest));
  ASSIGN_OR_RETURN(std::vector<std::string> diff_ids,
                   ReadImageConfig(dir_fd, BlobPath(cfg_digest), layers->as_array().size(),
                                   "the manifest", &image.config));
  for (size_t i = 0; i < diff_ids.size(); ++i) {
    const json::value& d = layers->as_array()[i];
    if (!d.is_object() || !d.as_object().if_contains("digest") ||
        !d.as_object().at("digest").is_string())
      return InvalidArgument("a layer descriptor has no digest");
    std::string digest(d.as_object().at("digest").as_string());
    if (DigestHex(digest).empty()) return InvalidArgument("bad layer digest " + digest);
    image.layers.push_back({BlobPath(digest), digest, diff_ids[i]});
  }
  return image;
}

Result<ArchiveImage> ReadDockerArchive(int dir_fd) {
  // manifest.json is a list; its first image is imported.
  ASSIGN_OR_RETURN(UniqueFd mfd, OpenInArchive(dir_fd, "manifest.json"));
  std::string text;
  RETURN_IF_ERROR(ReadAllChunks(mfd.get(), "manifest.json", [&](std::string_view d) {
    text.append(d);
    return text.size() > (4 << 20) ? InvalidArgument("manifest.json is too large") : Status::Ok();
  }));
  boost::system::error_code ec;
  json::value v = json::parse(text, ec);
  if (ec || !v.is_array() || v.as_array().empty() || !v.as_array()[0].is_object())
    return InvalidArgument("manifest.json is not a list of images");
  const json::object& entry = v.as_array()[0].as_object();
  const json::value* cfgp = entry.if_contains("Config");
  const json::value* layers = entry.if_contains("Layers");
  if (!cfgp || !cfgp->is_string() || !layers || !layers->is_array())
    return InvalidArgument("manifest.json: the image has no Config or Layers");
  ArchiveImage image;
  std::string cfg_path(cfgp->as_string());
  // The config is named by its digest ("<hex>.json" or "blobs/sha256/<hex>").
  std::string base = cfg_path.substr(cfg_path.rfind('/') + 1);
  if (base.size() > 5 && base.substr(base.size() - 5) == ".json")
    base = base.substr(0, base.size() - 5);
  if (!DigestHex("sha256:" + base).empty()) {
    RETURN_IF_ERROR(CheckBlob(dir_fd, cfg_path, "sha256:" + base));
    image.source_digest = "sha256:" + base;
  }
  ASSIGN_OR_RETURN(
      std::vector<std::string> diff_ids,
      ReadImageConfig(dir_fd, cfg_path, layers->as_array().size(), "manifest.json", &image.config));
  for (size_t i = 0; i < diff_ids.size(); ++i) {
    if (!layers->as_array()[i].is_string())
      return InvalidArgument("manifest.json: a layer is not a path");
    image.layers.push_back({std::string(layers->as_array()[i].as_string()), "", diff_ids[i]});
  }
  return image;
}

}  // namespace hutch::drivers::local
