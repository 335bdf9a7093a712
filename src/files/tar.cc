#include "files/tar.h"

#include <charconv>
#include <cstring>

#include <fmt/format.h>

namespace hutch::files {

namespace {

// ustar field offsets and sizes.
constexpr size_t kName = 0, kNameLen = 100;
constexpr size_t kMode = 100, kUid = 108, kGid = 116, kSize = 124, kMtime = 136, kChksum = 148;
constexpr size_t kType = 156, kLink = 157, kLinkLen = 100, kMagic = 257, kVersion = 263;
constexpr size_t kUname = 265, kGname = 297, kPrefix = 345, kPrefixLen = 155;

// Writes `v` as zero-padded octal into a field of `len` bytes (len-1 digits and a NUL);
// false when it does not fit.
bool PutOctal(char* field, size_t len, uint64_t v) {
  std::string s = fmt::format("{:0{}o}", v, len - 1);
  if (s.size() > len - 1) return false;
  memcpy(field, s.data(), s.size());
  field[len - 1] = '\0';
  return true;
}

Result<uint64_t> ParseNumber(std::string_view f, std::string_view what) {
  if (!f.empty() && (static_cast<unsigned char>(f[0]) & 0x80)) {
    // GNU base-256: big-endian, the first byte's high bit is the marker. Negative values
    // (0xff marker) are refused.
    if (static_cast<unsigned char>(f[0]) == 0xff)
      return InvalidArgument(fmt::format("tar header: negative {}", what));
    uint64_t v = static_cast<unsigned char>(f[0]) & 0x7f;
    for (size_t i = 1; i < f.size(); ++i) {
      if (v >> 56) return InvalidArgument(fmt::format("tar header: {} is too large", what));
      v = (v << 8) | static_cast<unsigned char>(f[i]);
    }
    return v;
  }
  size_t i = 0;
  while (i < f.size() && (f[i] == ' ' || f[i] == '\0')) ++i;
  uint64_t v = 0;
  bool any = false;
  for (; i < f.size() && f[i] >= '0' && f[i] <= '7'; ++i) {
    if (v >> 60) return InvalidArgument(fmt::format("tar header: {} is too large", what));
    v = v * 8 + static_cast<uint64_t>(f[i] - '0');
    any = true;
  }
  for (; i < f.size(); ++i) {
    if (f[i] != ' ' && f[i] != '\0')
      return InvalidArgument(fmt::format("tar header: {} is not an octal number", what));
  }
  (void)any;
  return v;
}

std::string_view CString(std::string_view field) {
  size_t nul = field.find('\0');
  return nul == std::string_view::npos ? field : field.substr(0, nul);
}

std::string PaxRecord(std::string_view key, std::string_view value) {
  // "<len> key=value\n", where len counts itself.
  size_t body = 1 + key.size() + 1 + value.size() + 1;
  size_t len = body + 1;
  while (std::to_string(len).size() + body != len) ++len;
  return fmt::format("{} {}={}\n", len, key, value);
}

std::string UstarBlock(const TarEntry& e, std::string_view name, std::string_view prefix,
                       std::string_view link, uint64_t size, char type) {
  std::string b(kTarBlock, '\0');
  memcpy(&b[kName], name.data(), std::min(name.size(), kNameLen));
  PutOctal(&b[kMode], 8, e.mode & 07777);
  if (!PutOctal(&b[kUid], 8, e.uid)) PutOctal(&b[kUid], 8, 0);
  if (!PutOctal(&b[kGid], 8, e.gid)) PutOctal(&b[kGid], 8, 0);
  if (!PutOctal(&b[kSize], 12, size)) PutOctal(&b[kSize], 12, 0);
  if (!PutOctal(&b[kMtime], 12, e.mtime < 0 ? 0 : static_cast<uint64_t>(e.mtime)))
    PutOctal(&b[kMtime], 12, 0);
  b[kType] = type;
  memcpy(&b[kLink], link.data(), std::min(link.size(), kLinkLen));
  memcpy(&b[kMagic], "ustar", 6);
  memcpy(&b[kVersion], "00", 2);
  memcpy(&b[kUname], "root", e.uid == 0 ? 4 : 0);
  memcpy(&b[kGname], "root", e.gid == 0 ? 4 : 0);
  memcpy(&b[kPrefix], prefix.data(), std::min(prefix.size(), kPrefixLen));
  memset(&b[kChksum], ' ', 8);
  unsigned sum = 0;
  for (unsigned char c : b) sum += c;
  std::string ck = fmt::format("{:06o}", sum);
  memcpy(&b[kChksum], ck.data(), 6);
  b[kChksum + 6] = '\0';
  b[kChksum + 7] = ' ';
  return b;
}

}  // namespace

std::string EncodeTarHeader(const TarEntry& e) {
  std::string path = e.path;
  if (e.type == '5' && (path.empty() || path.back() != '/')) path += '/';
  // ustar splits a long path at a '/' into prefix (155) and name (100).
  std::string name = path, prefix;
  bool path_fits = path.size() <= kNameLen;
  if (!path_fits && path.size() <= kNameLen + 1 + kPrefixLen) {
    // The first '/' that leaves at most 100 bytes after it; the part before must fit 155.
    size_t cut = path.find('/', path.size() > kNameLen + 1 ? path.size() - kNameLen - 1 : 0);
    if (cut != std::string::npos && cut > 0 && cut <= kPrefixLen && cut + 1 < path.size()) {
      prefix = path.substr(0, cut);
      name = path.substr(cut + 1);
      path_fits = true;
    }
  }
  std::string pax;
  if (!path_fits) pax += PaxRecord("path", path);
  if (e.link.size() > kLinkLen) pax += PaxRecord("linkpath", e.link);
  if (e.size >= (uint64_t{1} << 33)) pax += PaxRecord("size", std::to_string(e.size));
  if (e.uid >= (1u << 21)) pax += PaxRecord("uid", std::to_string(e.uid));
  if (e.gid >= (1u << 21)) pax += PaxRecord("gid", std::to_string(e.gid));
  std::string out;
  if (!pax.empty()) {
    TarEntry px;
    px.mode = 0644;
    px.mtime = e.mtime;
    std::string pname = "PaxHeaders/" + (path.size() > 80 ? path.substr(path.size() - 80) : path);
    out += UstarBlock(px, pname.substr(0, kNameLen), "", "", pax.size(), 'x');
    out += pax;
    out.append(TarPadding(pax.size()), '\0');
    if (!path_fits) {
      name = path.substr(0, kNameLen);
      prefix.clear();
    }
  }
  out += UstarBlock(e, name, prefix, e.link.substr(0, std::min(e.link.size(), kLinkLen)),
                    e.type == '0' ? e.size : 0, e.type);
  return out;
}

std::string TarTrailer() { return std::string(2 * kTarBlock, '\0'); }

Status TarReader::Feed(std::string_view data) {
  while (!data.empty()) {
    switch (state_) {
      case State::kEnd:
        return Status::Ok();  // what follows the trailer (more zero blocks) is ignored
      case State::kHeader: {
        size_t take = std::min(kTarBlock - block_.size(), data.size());
        block_.append(data.data(), take);
        data.remove_prefix(take);
        if (block_.size() == kTarBlock) {
          std::string block = std::move(block_);
          block_.clear();
          RETURN_IF_ERROR(OnHeaderBlock(block));
        }
        break;
      }
      case State::kData: {
        size_t take = static_cast<size_t>(std::min<uint64_t>(remaining_, data.size()));
        RETURN_IF_ERROR(sink_.OnData(data.substr(0, take)));
        data.remove_prefix(take);
        remaining_ -= take;
        if (remaining_ == 0) RETURN_IF_ERROR(EndEntry());
        break;
      }
      case State::kMeta: {
        size_t take = static_cast<size_t>(std::min<uint64_t>(remaining_, data.size()));
        meta_.append(data.data(), take);
        data.remove_prefix(take);
        remaining_ -= take;
        if (remaining_ == 0) {
          std::string meta = std::move(meta_);
          meta_.clear();
          if (meta_type_ == 'x' || meta_type_ == 'g') {
            RETURN_IF_ERROR(ApplyPax(meta, meta_type_ == 'g'));
          } else {
            std::string value(CString(meta));
            (meta_type_ == 'L' ? next_path_ : next_link_) = value;
          }
          remaining_ = pad_after_;
          state_ = remaining_ ? State::kPadding : State::kHeader;
        }
        break;
      }
      case State::kPadding: {
        size_t take = static_cast<size_t>(std::min<uint64_t>(remaining_, data.size()));
        data.remove_prefix(take);
        remaining_ -= take;
        if (remaining_ == 0) state_ = State::kHeader;
        break;
      }
    }
  }
  return Status::Ok();
}

Status TarReader::EndEntry() {
  in_entry_ = false;
  RETURN_IF_ERROR(sink_.OnEntryEnd());
  remaining_ = pad_after_;
  state_ = remaining_ ? State::kPadding : State::kHeader;
  return Status::Ok();
}

Status TarReader::OnHeaderBlock(std::string_view b) {
  bool zero = true;
  for (char c : b) {
    if (c != '\0') {
      zero = false;
      break;
    }
  }
  if (zero) {
    if (++zero_blocks_ >= 2) state_ = State::kEnd;
    return Status::Ok();
  }
  if (zero_blocks_ > 0) return InvalidArgument("tar: a zero block in the middle of the archive");
  // Checksum: the header's bytes with the checksum field as spaces, summed unsigned (POSIX) or
  // signed (old tars).
  ASSIGN_OR_RETURN(uint64_t want, ParseNumber(b.substr(kChksum, 8), "checksum"));
  uint64_t usum = 0;
  int64_t ssum = 0;
  for (size_t i = 0; i < kTarBlock; ++i) {
    char c = (i >= kChksum && i < kChksum + 8) ? ' ' : b[i];
    usum += static_cast<unsigned char>(c);
    ssum += static_cast<signed char>(c);
  }
  if (want != usum && static_cast<int64_t>(want) != ssum)
    return InvalidArgument("tar: header checksum mismatch (not a tar archive, or corrupt)");

  char type = b[kType] == '\0' ? '0' : b[kType];
  ASSIGN_OR_RETURN(uint64_t size, ParseNumber(b.substr(kSize, 12), "size"));
  if (type == 'x' || type == 'g' || type == 'L' || type == 'K') {
    if (size > kMaxMetaBytes)
      return InvalidArgument(
          fmt::format("tar: extended header of {} bytes; at most {}", size, kMaxMetaBytes));
    meta_type_ = type;
    meta_.clear();
    remaining_ = size;
    pad_after_ = TarPadding(size);
    state_ = State::kMeta;
    if (size == 0) {
      // Nothing to collect: apply the empty record set and go on.
      remaining_ = pad_after_;
      state_ = State::kHeader;
    }
    return Status::Ok();
  }

  TarEntry e;
  e.type = type;
  std::string_view name = CString(b.substr(kName, kNameLen));
  std::string_view prefix;
  if (b.substr(kMagic, 5) == "ustar") prefix = CString(b.substr(kPrefix, kPrefixLen));
  e.path = prefix.empty() ? std::string(name) : fmt::format("{}/{}", prefix, name);
  e.link = std::string(CString(b.substr(kLink, kLinkLen)));
  ASSIGN_OR_RETURN(uint64_t mode, ParseNumber(b.substr(kMode, 8), "mode"));
  ASSIGN_OR_RETURN(uint64_t uid, ParseNumber(b.substr(kUid, 8), "uid"));
  ASSIGN_OR_RETURN(uint64_t gid, ParseNumber(b.substr(kGid, 8), "gid"));
  ASSIGN_OR_RETURN(uint64_t mtime, ParseNumber(b.substr(kMtime, 12), "mtime"));
  e.mode = static_cast<uint32_t>(mode & 07777);
  e.uid = static_cast<uint32_t>(uid > 0xffffffffu ? 0 : uid);
  e.gid = static_cast<uint32_t>(gid > 0xffffffffu ? 0 : gid);
  e.mtime = static_cast<int64_t>(mtime > (uint64_t{1} << 62) ? 0 : mtime);
  e.size = size;
  if (!next_path_.empty()) e.path = std::move(next_path_);
  if (!next_link_.empty()) e.link = std::move(next_link_);
  if (has_next_size_) e.size = next_size_;
  if (has_next_uid_) e.uid = next_uid_;
  if (has_next_gid_) e.gid = next_gid_;
  if (has_next_mtime_) e.mtime = next_mtime_;
  next_path_.clear();
  next_link_.clear();
  has_next_size_ = has_next_uid_ = has_next_gid_ = has_next_mtime_ = false;
  // Only regular files (and old-style '7' contiguous files) carry data; a size on anything else
  // is skipped as padding-less data by POSIX, which we do not honour: refuse it.
  uint64_t data = 0;
  if (type == '0' || type == '7') {
    data = e.size;
    e.type = '0';
  } else {
    e.size = 0;
  }
  ++entries_;
  in_entry_ = true;
  RETURN_IF_ERROR(sink_.OnEntry(e));
  pad_after_ = TarPadding(data);
  remaining_ = data;
  if (data == 0) return EndEntry();
  state_ = State::kData;
  return Status::Ok();
}

Status TarReader::ApplyPax(std::string_view records, bool global) {
  while (!records.empty()) {
    size_t sp = records.find(' ');
    if (sp == std::string_view::npos || sp == 0 || sp > 20)
      return InvalidArgument("tar: malformed pax record");
    uint64_t len = 0;
    auto [p, ec] = std::from_chars(records.data(), records.data() + sp, len);
    if (ec != std::errc() || p != records.data() + sp || len <= sp + 1 || len > records.size() ||
        records[len - 1] != '\n')
      return InvalidArgument("tar: malformed pax record length");
    std::string_view kv = records.substr(sp + 1, len - sp - 2);
    records.remove_prefix(len);
    size_t eq = kv.find('=');
    if (eq == std::string_view::npos) return InvalidArgument("tar: pax record without '='");
    std::string_view key = kv.substr(0, eq), value = kv.substr(eq + 1);
    if (global) continue;  // global defaults (comments, charsets) do not change entries here
    auto number = [&](uint64_t* out) -> Status {
      std::string_view v = value.substr(0, value.find('.'));  // mtime may have a fraction
      auto [q, e2] = std::from_chars(v.data(), v.data() + v.size(), *out);
      if (e2 != std::errc() || q != v.data() + v.size() || v.empty())
        return InvalidArgument(fmt::format("tar: pax {} '{}' is not a number", key, value));
      return Status::Ok();
    };
    uint64_t n = 0;
    if (key == "path") {
      next_path_ = std::string(value);
      if (next_path_.empty()) next_path_ = ".";
    } else if (key == "linkpath") {
      next_link_ = std::string(value);
    } else if (key == "size") {
      RETURN_IF_ERROR(number(&n));
      has_next_size_ = true;
      next_size_ = n;
    } else if (key == "uid") {
      RETURN_IF_ERROR(number(&n));
      has_next_uid_ = true;
      next_uid_ = static_cast<uint32_t>(n > 0xffffffffu ? 0 : n);
    } else if (key == "gid") {
      RETURN_IF_ERROR(number(&n));
      has_next_gid_ = true;
      next_gid_ = static_cast<uint32_t>(n > 0xffffffffu ? 0 : n);
    } else if (key == "mtime") {
      if (!value.empty() && value[0] == '-') continue;
      RETURN_IF_ERROR(number(&n));
      has_next_mtime_ = true;
      next_mtime_ = static_cast<int64_t>(n > (uint64_t{1} << 62) ? 0 : n);
    }
  }
  return Status::Ok();
}

Status TarReader::Finish() {
  if (state_ == State::kEnd) return Status::Ok();
  // Archives that end without their trailer (or with one zero block) but at an entry boundary
  // are accepted, as GNU tar does.
  if (state_ == State::kHeader && block_.empty() && !in_entry_) return Status::Ok();
  return InvalidArgument("tar: the archive ends in the middle of an entry");
}

}  // namespace hutch::files
