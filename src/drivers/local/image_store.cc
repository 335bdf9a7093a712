#include "drivers/local/image_store.h"

#include <fcntl.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <set>

#include <fmt/format.h>

#include "common/hmac.h"
#include "common/ids.h"
#include "common/json.h"
#include "common/scope_guard.h"
#include "common/unique_fd.h"
#include "drivers/local/checkpoint_files.h"
#include "drivers/local/layer_apply.h"
#include "drivers/local/oci_archive.h"
#include "drivers/local/tree_stamp.h"
#include "drivers/local/tree_tar.h"
#include "sandbox/fs.h"

namespace hutch::drivers::local {

namespace {

std::string Hex(const unsigned char* p, size_t n) {
  return HexEncode(std::string_view(reinterpret_cast<const char*>(p), n));
}

Status IntegrityError(std::string what) {
  return Conflict(fmt::format("integrity check failed: {}; it is not used", what));
}

Result<std::string> RandomSuffix() {
  unsigned char b[8];
  if (getrandom(b, sizeof b, 0) != sizeof b) return ErrnoError("getrandom", errno);
  return Hex(b, sizeof b);
}

std::string CanonicalLayer(const LayerRecord& l) {
  return fmt::format("hutch-layer\n{}\n{}\n{}\n{}\n{}\n", l.digest, l.size_bytes, l.entries,
                     l.stamp, ToUnixMillis(l.created_at));
}

std::string CanonicalImage(const ImageRecord& m) {
  std::string s = fmt::format("hutch-image\n{}\n{}\n{}\n{}\n{}\n{}\n", m.version, m.name, m.owner,
                              m.source, m.source_digest, ToUnixMillis(m.created_at));
  for (const auto& l : m.layers) s += fmt::format("layer {} {}\n", l.digest, l.size_bytes);
  for (const auto& e : m.config.env) s += fmt::format("env {}\n", e.size()) + e + "\n";
  for (const auto& c : m.config.cmd) s += fmt::format("cmd {}\n", c.size()) + c + "\n";
  s += "workdir " + m.config.workdir + "\n";
  return s;
}

json::array StringsToJson(const std::vector<std::string>& v) {
  json::array a;
  for (const auto& s : v) a.emplace_back(s);
  return a;
}

// tmp/<dir>/root, made and opened: where a layer is extracted before it is installed.
Result<UniqueFd> MakeLayerRoot(const std::string& tmp) {
  RETURN_IF_ERROR(sandbox::MakeDir(tmp + "/root", 0755));
  UniqueFd root(open((tmp + "/root").c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
  if (!root) return ErrnoError("open " + tmp, errno);
  return root;
}

}  // namespace

bool IsValidImageFormat(std::string_view f) {
  return f == "auto" || f == "rootfs" || f == "oci" || f == "docker-archive";
}

bool IsValidImageName(std::string_view name) {
  if (name.empty() || name.size() > 63 || name == "host") return false;
  if (!((name[0] >= 'a' && name[0] <= 'z') || (name[0] >= '0' && name[0] <= '9'))) return false;
  for (char c : name) {
    if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' || c == '.' || c == '_'))
      return false;
  }
  return true;
}

Result<std::unique_ptr<ImageStore>> ImageStore::Open(const std::string& dir) {
  for (const char* sub : {"/layers", "/manifests", "/tmp"})
    RETURN_IF_ERROR(sandbox::MakeDirs(dir + sub, 0700));
  // Leftovers of imports a crash interrupted.
  UniqueFd tmp(open((dir + "/tmp").c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
  if (tmp) (void)sandbox::RemoveDirContents(tmp.get(), dir + "/tmp");
  ASSIGN_OR_RETURN(std::string key, LoadOrMakeCheckpointKey(dir));
  auto store = std::unique_ptr<ImageStore>(new ImageStore(dir, std::move(key)));
  {
    std::lock_guard lock(store->mu_);
    store->CollectLayers();
  }
  return store;
}

std::string ImageStore::LayerDir(const std::string& digest) const {
  return fmt::format("{}/layers/{}", dir_, DigestHex(digest));
}

Result<std::string> ImageStore::MakeTmp(std::string_view what) {
  ASSIGN_OR_RETURN(std::string suffix, RandomSuffix());
  std::string path = fmt::format("{}/{}-{}", TmpDir(), what, suffix);
  RETURN_IF_ERROR(sandbox::MakeDir(path, 0700));
  return path;
}

Result<LayerRecord> ImageStore::ReadLayer(const std::string& digest) {
  std::string hex = DigestHex(digest);
  if (hex.empty()) return InvalidArgument("bad layer digest: " + digest);
  auto text = sandbox::ReadFileToString(LayerDir(digest) + "/layer.json");
  if (!text.ok()) return text.status();
  auto o = ParseJsonObject(*text);
  if (!o.ok()) return IntegrityError(fmt::format("layer {}: its record does not parse", digest));
  LayerRecord l;
  const json::value *d = o->if_contains("digest"), *sz = o->if_contains("size_bytes"),
                    *en = o->if_contains("entries"), *st = o->if_contains("stamp"),
                    *at = o->if_contains("created_at_ms"), *mac = o->if_contains("mac");
  if (!d || !d->is_string() || !sz || !sz->is_int64() || !en || !en->is_int64() || !st ||
      !st->is_string() || !at || !at->is_int64() || !mac || !mac->is_string())
    return IntegrityError(fmt::format("layer {}: its record lacks a field", digest));
  l.digest = std::string(d->as_string());
  l.size_bytes = sz->as_int64();
  l.entries = en->as_int64();
  l.stamp = std::string(st->as_string());
  l.created_at = FromUnixMillis(at->as_int64());
  if (!ConstantTimeEquals(mac->as_string(), HmacSha256Hex(key_, CanonicalLayer(l))) ||
      l.digest != digest)
    return IntegrityError(fmt::format("layer {}: its record's signature does not match", digest));
  return l;
}

Result<LayerRecord> ImageStore::InstallLayer(const std::string& tmp_dir, const std::string& digest,
                                             int64_t size, int64_t entries) {
  std::lock_guard lock(mu_);
  std::string dest = LayerDir(digest);
  if (auto existing = ReadLayer(digest); existing.ok()) {
    (void)sandbox::RemoveTree(tmp_dir);
    return *existing;
  }
  // A layer directory without a valid record is a leftover (or was tampered with): replace it.
  if (sandbox::PathExists(dest)) RETURN_IF_ERROR(sandbox::RemoveTree(dest));
  if (rename(tmp_dir.c_str(), dest.c_str()) != 0)
    return ErrnoError("install layer " + digest, errno);
  LayerRecord l;
  l.digest = digest;
  l.size_bytes = size;
  l.created_at = Now();
  // The stamp is taken in place: nothing changes the tree after this.
  UniqueFd root(open((dest + "/root").c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
  if (!root) return ErrnoError("open layer " + digest, errno);
  int64_t n = 0;
  ASSIGN_OR_RETURN(l.stamp, StampTree(root.get(), &n));
  l.entries = entries > 0 ? entries : n;
  json::object o;
  o["digest"] = l.digest;
  o["size_bytes"] = l.size_bytes;
  o["entries"] = l.entries;
  o["stamp"] = l.stamp;
  o["created_at_ms"] = ToUnixMillis(l.created_at);
  o["mac"] = HmacSha256Hex(key_, CanonicalLayer(l));
  std::string tmp = dest + "/layer.json.tmp";
  unlink(tmp.c_str());
  RETURN_IF_ERROR(sandbox::WriteNewFile(tmp, json::serialize(o) + "\n", 0600));
  if (rename(tmp.c_str(), (dest + "/layer.json").c_str()) != 0)
    return ErrnoError("install layer record " + digest, errno);
  pinned_.insert(digest);
  return l;
}

Status ImageStore::WriteManifest(const ImageRecord& m) {
  json::object o;
  o["version"] = m.version;
  o["name"] = m.name;
  o["owner"] = m.owner;
  o["source"] = m.source;
  o["source_digest"] = m.source_digest;
  o["created_at_ms"] = ToUnixMillis(m.created_at);
  json::array layers;
  for (const auto& l : m.layers) {
    json::object lo;
    lo["digest"] = l.digest;
    lo["size_bytes"] = l.size_bytes;
    layers.push_back(std::move(lo));
  }
  o["layers"] = std::move(layers);
  json::object cfg;
  cfg["env"] = StringsToJson(m.config.env);
  cfg["cmd"] = StringsToJson(m.config.cmd);
  cfg["workdir"] = m.config.workdir;
  o["config"] = std::move(cfg);
  o["mac"] = HmacSha256Hex(key_, CanonicalImage(m));
  std::string path = fmt::format("{}/manifests/{}.json", dir_, m.name);
  std::string tmp = path + ".tmp";
  unlink(tmp.c_str());
  RETURN_IF_ERROR(sandbox::WriteNewFile(tmp, json::serialize(o) + "\n", 0600));
  // link, not rename: an image of that name made meanwhile is not replaced.
  if (link(tmp.c_str(), path.c_str()) != 0) {
    int err = errno;
    unlink(tmp.c_str());
    if (err == EEXIST) return Conflict(fmt::format("image {} exists already", m.name));
    return ErrnoError("install manifest of " + m.name, err);
  }
  unlink(tmp.c_str());
  return Status::Ok();
}

Result<ImageRecord> ImageStore::Get(const std::string& name) {
  if (!IsValidImageName(name)) return InvalidArgument(fmt::format("bad image name '{}'", name));
  auto text = sandbox::ReadFileToString(fmt::format("{}/manifests/{}.json", dir_, name));
  if (!text.ok()) {
    if (text.status().code() == Code::kNotFound)
      return NotFound(fmt::format("image {} not found", name));
    return text.status();
  }
  auto parsed = ParseJsonObject(*text);
  if (!parsed.ok())
    return IntegrityError(fmt::format("image {}: its manifest does not parse", name));
  const json::object& o = *parsed;
  ImageRecord m;
  auto str = [&](const char* k, std::string* out) {
    const json::value* v = o.if_contains(k);
    if (!v || !v->is_string()) return false;
    *out = std::string(v->as_string());
    return true;
  };
  std::string mac;
  const json::value* version = o.if_contains("version");
  const json::value* created = o.if_contains("created_at_ms");
  const json::value* layers = o.if_contains("layers");
  const json::value* cfg = o.if_contains("config");
  if (!version || !version->is_int64() || !created || !created->is_int64() || !layers ||
      !layers->is_array() || !cfg || !cfg->is_object() || !str("name", &m.name) ||
      !str("owner", &m.owner) || !str("source", &m.source) ||
      !str("source_digest", &m.source_digest) || !str("mac", &mac))
    return IntegrityError(fmt::format("image {}: its manifest lacks a field", name));
  m.version = static_cast<int>(version->as_int64());
  m.created_at = FromUnixMillis(created->as_int64());
  for (const auto& lv : layers->as_array()) {
    if (!lv.is_object()) return IntegrityError(fmt::format("image {}: a bad layer", name));
    const json::value* d = lv.as_object().if_contains("digest");
    const json::value* s = lv.as_object().if_contains("size_bytes");
    if (!d || !d->is_string() || !s || !s->is_int64())
      return IntegrityError(fmt::format("image {}: a bad layer", name));
    LayerRecord l;
    l.digest = std::string(d->as_string());
    l.size_bytes = s->as_int64();
    m.layers.push_back(std::move(l));
  }
  const json::object& co = cfg->as_object();
  if (!JsonStrings(co.if_contains("env"), &m.config.env) ||
      !JsonStrings(co.if_contains("cmd"), &m.config.cmd))
    return IntegrityError(fmt::format("image {}: a bad config", name));
  if (const json::value* w = co.if_contains("workdir"); w && w->is_string())
    m.config.workdir = std::string(w->as_string());
  if (m.name != name || !ConstantTimeEquals(mac, HmacSha256Hex(key_, CanonicalImage(m))))
    return IntegrityError(fmt::format("image {}: its manifest's signature does not match", name));
  return m;
}

Result<std::vector<ImageRecord>> ImageStore::List() {
  UniqueFd dir(open((dir_ + "/manifests").c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
  if (!dir) return ErrnoError("open " + dir_ + "/manifests", errno);
  ASSIGN_OR_RETURN(std::vector<std::string> names, ListDir(dir.get(), "manifests"));
  std::vector<ImageRecord> out;
  for (const auto& n : names) {
    if (n.size() < 6 || n.substr(n.size() - 5) != ".json") continue;
    auto m = Get(n.substr(0, n.size() - 5));
    if (m.ok()) out.push_back(std::move(*m));
  }
  return out;
}

void ImageStore::CollectLayers() {
  std::set<std::string> used;
  for (const auto& p : pinned_) used.insert(DigestHex(p));
  UniqueFd dir(open((dir_ + "/manifests").c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
  if (!dir) return;
  auto names = ListDir(dir.get(), "manifests");
  if (!names.ok()) return;
  for (const auto& n : *names) {
    if (n.size() < 6 || n.substr(n.size() - 5) != ".json") continue;
    // A manifest that fails its check still keeps its layers: deleting it is the user's call.
    auto text = sandbox::ReadFileToString(fmt::format("{}/manifests/{}", dir_, n));
    if (!text.ok()) return;  // unsure what is used: collect nothing
    auto o = ParseJsonObject(*text);
    if (!o.ok()) continue;
    const json::value* layers = o->if_contains("layers");
    if (!layers || !layers->is_array()) continue;
    for (const auto& lv : layers->as_array()) {
      if (!lv.is_object()) continue;
      const json::value* d = lv.as_object().if_contains("digest");
      if (d && d->is_string()) used.insert(DigestHex(d->as_string()));
    }
  }
  UniqueFd ldir(open((dir_ + "/layers").c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
  if (!ldir) return;
  auto layers = ListDir(ldir.get(), "layers");
  if (!layers.ok()) return;
  for (const auto& hex : *layers) {
    if (!used.count(hex)) (void)sandbox::RemoveTree(fmt::format("{}/layers/{}", dir_, hex));
  }
}

Status ImageStore::Delete(const std::string& name) {
  if (!IsValidImageName(name)) return InvalidArgument(fmt::format("bad image name '{}'", name));
  std::lock_guard lock(mu_);
  std::string path = fmt::format("{}/manifests/{}.json", dir_, name);
  if (unlink(path.c_str()) != 0) {
    if (errno == ENOENT) return NotFound(fmt::format("image {} not found", name));
    return ErrnoError("remove " + path, errno);
  }
  CollectLayers();
  return Status::Ok();
}

Result<std::vector<std::string>> ImageStore::VerifiedLayerDirs(const std::string& name) {
  ASSIGN_OR_RETURN(ImageRecord m, Get(name));
  std::vector<std::string> dirs;
  for (const auto& l : m.layers) {
    auto rec = ReadLayer(l.digest);
    if (!rec.ok()) {
      if (rec.status().code() == Code::kNotFound)
        return IntegrityError(fmt::format("image {}: layer {} is missing", name, l.digest));
      return rec.status().WithContext("image " + name);
    }
    std::string root = LayerDir(l.digest) + "/root";
    UniqueFd fd(open(root.c_str(), O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC));
    if (!fd) return IntegrityError(fmt::format("image {}: layer {} has no tree", name, l.digest));
    ASSIGN_OR_RETURN(std::string stamp, StampTree(fd.get(), nullptr));
    if (stamp != rec->stamp)
      return IntegrityError(fmt::format(
          "image {}: layer {} was changed on disk after it was imported (re-import the image)",
          name, l.digest));
    dirs.push_back(root);
  }
  return dirs;
}

Result<ImageRecord> ImageStore::ImportTree(const std::string& name, const std::string& owner,
                                           int dir_fd, const std::vector<LayerRecord>& base_layers,
                                           const std::string& source,
                                           const std::string& source_digest,
                                           const ImageConfigInfo& config,
                                           const ImageProgressFn& progress) {
  if (!IsValidImageName(name)) return InvalidArgument(fmt::format("bad image name '{}'", name));
  if (Get(name).ok()) return Conflict(fmt::format("image {} exists already", name));
  BeginImport();
  ScopeGuard end_import([this] { EndImport(); });
  ASSIGN_OR_RETURN(std::string tmp, MakeTmp("layer"));
  ScopeGuard remove_tmp([&] { (void)sandbox::RemoveTree(tmp); });
  ASSIGN_OR_RETURN(UniqueFd root, MakeLayerRoot(tmp));
  LayerSink sink(std::move(root));
  int64_t fed = 0, last = 0;
  RETURN_IF_ERROR(WriteTreeAsTar(dir_fd, [&](std::string_view d) -> Status {
    fed += static_cast<int64_t>(d.size());
    if (progress && fed - last > (16 << 20)) {
      last = fed;
      progress(0.5, fmt::format("captured {} MiB", fed >> 20));
    }
    return sink.Feed(d);
  }));
  RETURN_IF_ERROR(sink.Finish());
  ImageRecord m;
  m.name = name;
  m.owner = owner;
  m.source = source;
  m.source_digest = source_digest;
  m.config = config;
  m.created_at = Now();
  m.layers = base_layers;
  {
    std::lock_guard lock(mu_);
    for (const auto& l : base_layers) pinned_.insert(l.digest);
  }
  ASSIGN_OR_RETURN(LayerRecord top,
                   InstallLayer(tmp, "sha256:" + sink.HexDigest(), sink.size(), sink.entries()));
  remove_tmp.Cancel();
  m.layers.push_back(top);
  for (const auto& l : m.layers) RETURN_IF_ERROR(ReadLayer(l.digest).status());
  if (progress) progress(0.95, "writing the manifest");
  RETURN_IF_ERROR(WriteManifest(m));
  return m;
}

void ImageStore::BeginImport() {
  std::lock_guard lock(mu_);
  ++active_imports_;
}

void ImageStore::EndImport() {
  std::lock_guard lock(mu_);
  // Pins stay until the last import running ends: a layer one of them installed is never
  // collected before its manifest names it.
  if (--active_imports_ == 0) {
    pinned_.clear();
    CollectLayers();
  }
}

Result<LayerRecord> ImageStore::ExtractLayer(const LayerSource& source,
                                             const ImageProgressFn& progress) {
  ASSIGN_OR_RETURN(std::string tmp, MakeTmp("layer"));
  ScopeGuard remove_tmp([&] { (void)sandbox::RemoveTree(tmp); });
  ASSIGN_OR_RETURN(UniqueFd root, MakeLayerRoot(tmp));
  LayerSink sink(std::move(root));
  Status fed = FeedCompressed(source.fd, source.what, &sink, nullptr, progress, source.from,
                              source.to, source.size);
  if (!source.diff_id.empty()) fed = fed.WithContext("layer " + source.what);
  RETURN_IF_ERROR(fed);
  std::string got = "sha256:" + sink.HexDigest();
  if (!source.diff_id.empty() && got != source.diff_id)
    return InvalidArgument(fmt::format(
        "layer {} is tampered or corrupt: its content's sha256 is {}, the config's diff_id "
        "{}; refused",
        source.what, got, source.diff_id));
  ASSIGN_OR_RETURN(LayerRecord l, InstallLayer(tmp, got, sink.size(), sink.entries()));
  remove_tmp.Cancel();
  return l;
}

Result<LayerRecord> ImageStore::ImportArchiveLayer(int dir_fd, const LayerRef& ref,
                                                   const ImageProgressFn& progress, double from,
                                                   double to) {
  if (!ref.blob_digest.empty()) RETURN_IF_ERROR(CheckBlob(dir_fd, ref.blob_path, ref.blob_digest));
  if (auto have = ReadLayer(ref.diff_id); have.ok()) {
    // Stored already (by another image): shared, not extracted again. Its blob was checked
    // above; a docker-save layer (named by no digest) is hashed to check its diff_id.
    if (ref.blob_digest.empty()) RETURN_IF_ERROR(CheckLayerContent(dir_fd, ref));
    std::lock_guard lock(mu_);
    pinned_.insert(ref.diff_id);
    if (progress) progress(to, fmt::format("layer {} is stored already", ref.diff_id));
    return *have;
  }
  ASSIGN_OR_RETURN(UniqueFd fd, OpenInArchive(dir_fd, ref.blob_path));
  struct stat st;
  if (fstat(fd.get(), &st) != 0) return ErrnoError("stat " + ref.blob_path, errno);
  return ExtractLayer({fd.get(), ref.blob_path, st.st_size, ref.diff_id, from, to}, progress);
}

Status ImageStore::ImportArchive(int fd, const std::string& path, const std::string& format,
                                 const ImageProgressFn& progress, ImageRecord* m) {
  // OCI layout and docker save: the archive's files (blobs, JSON) land in a scratch directory
  // first, with the same confined extractor the files API uses.
  ASSIGN_OR_RETURN(std::string scratch, MakeTmp("archive"));
  ScopeGuard remove_scratch([&] { (void)sandbox::RemoveTree(scratch); });
  RETURN_IF_ERROR(UnpackArchive(fd, path, scratch));
  if (progress) progress(0.1, "archive unpacked; checking digests");
  UniqueFd sdir(open(scratch.c_str(), O_PATH | O_DIRECTORY | O_CLOEXEC));
  if (!sdir) return ErrnoError("open " + scratch, errno);
  ASSIGN_OR_RETURN(ArchiveImage image,
                   format == "oci" ? ReadOciLayout(sdir.get()) : ReadDockerArchive(sdir.get()));
  m->source_digest = image.source_digest;
  m->config = image.config;
  const size_t n = image.layers.size();
  for (size_t i = 0; i < n; ++i) {
    const double from = 0.1 + 0.85 * static_cast<double>(i) / static_cast<double>(n);
    const double to = 0.1 + 0.85 * static_cast<double>(i + 1) / static_cast<double>(n);
    ASSIGN_OR_RETURN(LayerRecord l,
                     ImportArchiveLayer(sdir.get(), image.layers[i], progress, from, to));
    m->layers.push_back(l);
  }
  if (m->layers.empty()) return InvalidArgument("the image has no layers");
  return Status::Ok();
}

Result<ImageRecord> ImageStore::Import(const std::string& name, const std::string& owner,
                                       const std::string& path, std::string format,
                                       const ImageProgressFn& progress) {
  if (!IsValidImageName(name)) return InvalidArgument(fmt::format("bad image name '{}'", name));
  if (!IsValidImageFormat(format)) return InvalidArgument("unknown image format: " + format);
  if (Get(name).ok()) return Conflict(fmt::format("image {} exists already", name));
  BeginImport();
  ScopeGuard end_import([this] { EndImport(); });
  UniqueFd archive(open(path.c_str(), O_RDONLY | O_CLOEXEC));
  if (!archive) return ErrnoError("open " + path, errno);
  struct stat ast;
  if (fstat(archive.get(), &ast) != 0) return ErrnoError("stat " + path, errno);
  if (format == "auto") {
    ASSIGN_OR_RETURN(format, DetectArchiveFormat(archive.get(), path));
  }
  if (progress) progress(0.02, fmt::format("importing a {} archive", format));

  ImageRecord m;
  m.name = name;
  m.owner = owner;
  m.source = format;
  m.created_at = Now();
  if (format == "rootfs") {
    ASSIGN_OR_RETURN(
        LayerRecord l,
        ExtractLayer({archive.get(), "the rootfs", ast.st_size, "", 0.05, 0.9}, progress));
    m.layers.push_back(l);
    m.config.env = {"PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"};
  } else {
    RETURN_IF_ERROR(ImportArchive(archive.get(), path, format, progress, &m));
  }
  if (progress) progress(0.97, "writing the manifest");
  RETURN_IF_ERROR(WriteManifest(m));
  if (progress) progress(1, "imported");
  return m;
}

}  // namespace hutch::drivers::local
