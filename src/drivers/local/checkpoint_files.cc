#include "drivers/local/checkpoint_files.h"

#include <fcntl.h>
#include <linux/fs.h>
#include <sys/ioctl.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <memory>

#include <fmt/format.h>

#include "common/hmac.h"
#include "common/ids.h"
#include "common/json.h"
#include "common/sha256.h"
#include "common/unique_fd.h"
#include "sandbox/fs.h"

namespace hutch::drivers::local {

namespace {

// Every field but the mac, in a fixed order: what the mac covers.
std::string Canonical(const CheckpointManifest& m) {
  return fmt::format("hutch-checkpoint\n{}\n{}\n{}\n{}\n{}\n{}\n{}\n{}\n{}\n{}\n", m.version,
                     m.session_id, m.name, m.size_bytes, m.digest.sha256, m.digest.data_bytes,
                     m.digest.extents, ToUnixMillis(m.created_at), m.freeze_ms, m.duration_ms);
}

Status IntegrityError(std::string what) {
  return Conflict(fmt::format("integrity check failed: {}; it is not used", what));
}

}  // namespace

Status CopyImage(int src, int dst, const std::string& what) {
  // A reflink shares every block, holes included, in one call.
  if (ioctl(dst, FICLONE, src) == 0) return Status::Ok();
  struct stat st;
  if (fstat(src, &st) != 0) return ErrnoError("stat " + what, errno);
  const off_t size = st.st_size;
  if (ftruncate(dst, size) != 0) return ErrnoError("size the copy of " + what, errno);
  off_t pos = 0;
  while (pos < size) {
    off_t data = lseek(src, pos, SEEK_DATA);
    if (data < 0) {
      if (errno == ENXIO) break;  // only a hole is left
      return ErrnoError("SEEK_DATA in " + what, errno);
    }
    off_t hole = lseek(src, data, SEEK_HOLE);
    if (hole < 0) return ErrnoError("SEEK_HOLE in " + what, errno);
    loff_t in = data, out = data;
    while (in < hole) {
      ssize_t n = copy_file_range(src, &in, dst, &out, static_cast<size_t>(hole - in), 0);
      if (n < 0 && errno == EINTR) continue;
      if (n <= 0) return ErrnoError("copy " + what, n < 0 ? errno : EIO);
    }
    pos = hole;
  }
  return Status::Ok();
}

Result<ImageDigest> DigestImage(int fd, const std::string& what) {
  struct stat st;
  if (fstat(fd, &st) != 0) return ErrnoError("stat " + what, errno);
  Sha256 sha;
  ImageDigest d;
  constexpr size_t kChunk = 1 << 20;
  std::unique_ptr<char[]> buf(new char[kChunk]);
  off_t pos = 0;
  while (pos < st.st_size) {
    off_t data = lseek(fd, pos, SEEK_DATA);
    if (data < 0) {
      if (errno == ENXIO) break;
      return ErrnoError("SEEK_DATA in " + what, errno);
    }
    off_t hole = lseek(fd, data, SEEK_HOLE);
    if (hole < 0) return ErrnoError("SEEK_HOLE in " + what, errno);
    unsigned char header[16];
    uint64_t off = static_cast<uint64_t>(data), len = static_cast<uint64_t>(hole - data);
    for (int i = 0; i < 8; ++i) {
      header[i] = static_cast<unsigned char>(off >> (8 * i));
      header[8 + i] = static_cast<unsigned char>(len >> (8 * i));
    }
    sha.Update(std::string_view(reinterpret_cast<const char*>(header), sizeof header));
    for (off_t at = data; at < hole;) {
      size_t want = static_cast<size_t>(std::min<off_t>(hole - at, kChunk));
      ssize_t n = pread(fd, buf.get(), want, at);
      if (n < 0 && errno == EINTR) continue;
      if (n <= 0) return ErrnoError("read " + what, n < 0 ? errno : EIO);
      sha.Update(std::string_view(buf.get(), static_cast<size_t>(n)));
      at += n;
    }
    d.data_bytes += hole - data;
    d.extents += 1;
    pos = hole;
  }
  d.sha256 = sha.HexDigest();
  return d;
}

std::string EncodeManifest(const CheckpointManifest& m, const std::string& key) {
  json::object o;
  o["version"] = m.version;
  o["session_id"] = m.session_id;
  o["name"] = m.name;
  o["size_bytes"] = m.size_bytes;
  o["sha256"] = m.digest.sha256;
  o["data_bytes"] = m.digest.data_bytes;
  o["extents"] = m.digest.extents;
  o["created_at_ms"] = ToUnixMillis(m.created_at);
  o["freeze_ms"] = m.freeze_ms;
  o["duration_ms"] = m.duration_ms;
  o["mac"] = HmacSha256Hex(key, Canonical(m));
  return json::serialize(o) + "\n";
}

Result<CheckpointManifest> DecodeManifest(std::string_view text, const std::string& key) {
  auto parsed = ParseJsonObject(text);
  if (!parsed.ok()) return IntegrityError("the manifest does not parse");
  const json::object& o = *parsed;
  CheckpointManifest m;
  auto str = [&](const char* k, std::string* out) {
    const json::value* v = o.if_contains(k);
    if (!v || !v->is_string()) return false;
    *out = std::string(v->get_string());
    return true;
  };
  auto num = [&](const char* k, int64_t* out) {
    const json::value* v = o.if_contains(k);
    if (!v || !v->is_int64()) return false;
    *out = v->get_int64();
    return true;
  };
  int64_t version = 0, created = 0;
  std::string mac;
  if (!num("version", &version) || !str("session_id", &m.session_id) || !str("name", &m.name) ||
      !num("size_bytes", &m.size_bytes) || !str("sha256", &m.digest.sha256) ||
      !num("data_bytes", &m.digest.data_bytes) || !num("extents", &m.digest.extents) ||
      !num("created_at_ms", &created) || !num("freeze_ms", &m.freeze_ms) ||
      !num("duration_ms", &m.duration_ms) || !str("mac", &mac)) {
    return IntegrityError("the manifest lacks a field");
  }
  if (version != 1) return IntegrityError(fmt::format("manifest version {} is unknown", version));
  m.version = 1;
  m.created_at = FromUnixMillis(created);
  std::string want = HmacSha256Hex(key, Canonical(m));
  // Not secret-dependent timing worth hiding here (the key never leaves the server), but a
  // constant-time compare costs nothing.
  if (!ConstantTimeEquals(mac, want))
    return IntegrityError("the manifest's signature does not match");
  return m;
}

bool IsValidCheckpointFileName(std::string_view name) {
  if (!name.empty() && name[0] == '.') name.remove_prefix(1);
  if (name.empty() || name.size() > 63 || name.front() == '-' || name.back() == '-') return false;
  for (char c : name) {
    if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-')) return false;
  }
  return true;
}

Result<std::string> LoadOrMakeCheckpointKey(const std::string& checkpoints_dir) {
  RETURN_IF_ERROR(sandbox::MakeDirs(checkpoints_dir, 0700));
  std::string path = checkpoints_dir + "/key";
  auto existing = sandbox::ReadFileToString(path);
  if (existing.ok() && existing->size() == 32) return *existing;
  unsigned char key[32];
  if (getrandom(key, sizeof key, 0) != sizeof key) return ErrnoError("getrandom", errno);
  std::string k(reinterpret_cast<char*>(key), sizeof key);
  // Made under a temporary name and linked into place: two servers racing keep one key.
  std::string tmp = fmt::format("{}.tmp-{}", path, getpid());
  unlink(tmp.c_str());
  RETURN_IF_ERROR(sandbox::WriteNewFile(tmp, k, 0600));
  if (link(tmp.c_str(), path.c_str()) != 0 && errno != EEXIST) {
    int err = errno;
    unlink(tmp.c_str());
    return ErrnoError("install " + path, err);
  }
  unlink(tmp.c_str());
  auto text = sandbox::ReadFileToString(path);
  if (!text.ok()) return text.status();
  if (text->size() != 32) return Internal(path + " is not 32 bytes: remove it to make a new key");
  return *text;
}

}  // namespace hutch::drivers::local
