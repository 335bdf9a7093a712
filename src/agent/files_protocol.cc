#include "agent/files_protocol.h"

#include "agent/protocol.h"
#include "agent/wire.h"

namespace hutch::agent {

namespace {

// Bounds a decoder holds a hostile peer to.
constexpr size_t kMaxPathBytes = 4096;
constexpr size_t kMaxEntries = 1000000;

bool Finish(WireReader& r, std::string_view what, std::string* error) {
  if (r.ExpectEnd()) return true;
  *error = std::string(what) + ": " + r.error();
  return false;
}

// The API's error codes on the wire: fixed numbers, never renumbered, whatever order
// common/status.h keeps its enum in.
struct WireCode {
  Code code;
  uint32_t wire;
};
constexpr WireCode kWireCodes[] = {
    {Code::kInvalidArgument, 1},
    {Code::kPermissionDenied, 2},
    {Code::kNotFound, 3},
    {Code::kConflict, 4},
    {Code::kPayloadTooLarge, 5},
    {Code::kResourceExhausted, 6},
    {Code::kInsufficientStorage, 7},
    {Code::kUnavailable, 8},
    {Code::kInternal, 9},
};

void WriteEntry(WireWriter& w, const files::Entry& e) {
  w.String(e.name);
  w.String(e.path);
  w.U8(static_cast<uint8_t>(e.type));
  w.U64(e.size);
  w.U32(e.mode);
  w.U32(e.uid);
  w.U32(e.gid);
  w.I64(e.mtime_ns);
  w.String(e.target);
}

bool ReadEntry(WireReader& r, files::Entry* e) {
  uint8_t type = 0;
  bool ok = r.String(&e->name, kMaxPathBytes) && r.String(&e->path, kMaxPathBytes) && r.U8(&type) &&
            r.U64(&e->size) && r.U32(&e->mode) && r.U32(&e->uid) && r.U32(&e->gid) &&
            r.I64(&e->mtime_ns) && r.String(&e->target, kMaxPathBytes);
  if (!ok) return false;
  if (type > static_cast<uint8_t>(files::FileType::kBlockDevice)) return false;
  e->type = static_cast<files::FileType>(type);
  return true;
}

}  // namespace

bool IsFileRequest(uint8_t type) {
  return type >= static_cast<uint8_t>(MessageType::kFileStat) &&
         type <= static_cast<uint8_t>(MessageType::kFileWatch);
}

std::string EncodeFileRequest(const FileRequest& m) {
  WireWriter w;
  w.String(m.path);
  w.String(m.to);
  w.Bool(m.has_mode);
  w.U32(m.mode);
  w.Bool(m.parents);
  w.Bool(m.recursive);
  w.Bool(m.overwrite);
  w.Bool(m.pass_fd);
  w.U32(m.depth);
  w.U64(m.limit);
  w.U64(m.max_bytes);
  w.U64(m.max_entries);
  return w.Take();
}

bool DecodeFileRequest(std::string_view payload, FileRequest* out, std::string* error) {
  WireReader r(payload);
  r.String(&out->path, kMaxPathBytes);
  r.String(&out->to, kMaxPathBytes);
  r.Bool(&out->has_mode);
  r.U32(&out->mode);
  r.Bool(&out->parents);
  r.Bool(&out->recursive);
  r.Bool(&out->overwrite);
  r.Bool(&out->pass_fd);
  r.U32(&out->depth);
  r.U64(&out->limit);
  r.U64(&out->max_bytes);
  r.U64(&out->max_entries);
  if (!Finish(r, "FileRequest", error)) return false;
  if (out->mode > 07777) {
    *error = "FileRequest: mode beyond 07777";
    return false;
  }
  return true;
}

std::string EncodeFileOpened(const FileOpened& m) {
  WireWriter w;
  w.Bool(m.directory);
  w.U64(m.size);
  w.Bool(m.fd_attached);
  return w.Take();
}

bool DecodeFileOpened(std::string_view payload, FileOpened* out, std::string* error) {
  WireReader r(payload);
  r.Bool(&out->directory);
  r.U64(&out->size);
  r.Bool(&out->fd_attached);
  return Finish(r, "FileOpened", error);
}

std::string EncodeFileRange(const FileRange& m) {
  WireWriter w;
  w.U64(m.offset);
  w.U64(m.length);
  return w.Take();
}

bool DecodeFileRange(std::string_view payload, FileRange* out, std::string* error) {
  WireReader r(payload);
  r.U64(&out->offset);
  r.U64(&out->length);
  return Finish(r, "FileRange", error);
}

std::string EncodeFileEntry(const FileEntryMessage& m) {
  WireWriter w;
  WriteEntry(w, m.entry);
  w.Bool(m.created);
  return w.Take();
}

bool DecodeFileEntry(std::string_view payload, FileEntryMessage* out, std::string* error) {
  WireReader r(payload);
  if (!ReadEntry(r, &out->entry)) {
    *error = "FileEntry: " + (r.ok() ? std::string("bad file type") : r.error());
    return false;
  }
  r.Bool(&out->created);
  return Finish(r, "FileEntry", error);
}

std::string EncodeFileListing(const files::Listing& m) {
  WireWriter w;
  w.U32(static_cast<uint32_t>(m.entries.size()));
  for (const auto& e : m.entries) WriteEntry(w, e);
  w.Bool(m.truncated);
  return w.Take();
}

bool DecodeFileListing(std::string_view payload, files::Listing* out, std::string* error) {
  WireReader r(payload);
  uint32_t n = 0;
  // Every entry takes at least 41 bytes: a count beyond what the payload could hold is a lie.
  if (!r.U32(&n) || n > kMaxEntries || n > r.remaining() / 41) {
    *error = "FileListing: bad entry count";
    return false;
  }
  out->entries.resize(n);
  for (auto& e : out->entries) {
    if (!ReadEntry(r, &e)) {
      *error = "FileListing: " + (r.ok() ? std::string("bad file type") : r.error());
      return false;
    }
  }
  r.Bool(&out->truncated);
  return Finish(r, "FileListing", error);
}

std::string EncodeFileExtracted(const FileExtracted& m) {
  WireWriter w;
  w.U64(m.entries);
  w.U64(m.files);
  w.U64(m.bytes);
  return w.Take();
}

bool DecodeFileExtracted(std::string_view payload, FileExtracted* out, std::string* error) {
  WireReader r(payload);
  r.U64(&out->entries);
  r.U64(&out->files);
  r.U64(&out->bytes);
  return Finish(r, "FileExtracted", error);
}

std::string EncodeFileEvents(const FileEvents& m) {
  WireWriter w;
  w.U32(static_cast<uint32_t>(m.events.size()));
  for (const auto& e : m.events) {
    w.String(e.type);
    w.String(e.path);
    w.String(e.from);
    w.Bool(e.directory);
  }
  w.Bool(m.gone);
  return w.Take();
}

bool DecodeFileEvents(std::string_view payload, FileEvents* out, std::string* error) {
  WireReader r(payload);
  uint32_t n = 0;
  if (!r.U32(&n) || n > kMaxEntries || n > r.remaining() / 13) {
    *error = "FileEvents: bad event count";
    return false;
  }
  out->events.resize(n);
  for (auto& e : out->events) {
    r.String(&e.type, 32);
    r.String(&e.path, kMaxPathBytes);
    r.String(&e.from, kMaxPathBytes);
    r.Bool(&e.directory);
  }
  r.Bool(&out->gone);
  return Finish(r, "FileEvents", error);
}

std::string EncodeFileError(const Status& status) {
  uint32_t wire = 9;
  for (const auto& c : kWireCodes)
    if (c.code == status.code()) wire = c.wire;
  WireWriter w;
  w.U32(wire);
  w.String(status.message());
  return w.Take();
}

bool DecodeFileError(std::string_view payload, Status* out, std::string* error) {
  WireReader r(payload);
  uint32_t wire = 0;
  std::string message;
  r.U32(&wire);
  r.String(&message, size_t{64} * 1024);
  if (!Finish(r, "FileError", error)) return false;
  Code code = Code::kInternal;  // a code from a newer agent
  for (const auto& c : kWireCodes)
    if (c.wire == wire) code = c.code;
  *out = Status(code, std::move(message));
  return true;
}

}  // namespace hutch::agent
