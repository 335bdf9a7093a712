#include "files/codec.h"

#include <zlib.h>
#include <zstd.h>

#include <cstring>

#include <fmt/format.h>

namespace hutch::files {

Result<Compression> ParseCompression(std::string_view name) {
  if (name.empty() || name == "none") return Compression::kNone;
  if (name == "gzip" || name == "gz") return Compression::kGzip;
  if (name == "zstd" || name == "zst") return Compression::kZstd;
  return InvalidArgument(fmt::format("compress must be gzip, zstd or none, got '{}'", name));
}

std::string_view ContentType(Compression c) {
  switch (c) {
    case Compression::kGzip:
      return "application/gzip";
    case Compression::kZstd:
      return "application/zstd";
    case Compression::kNone:
      break;
  }
  return "application/x-tar";
}

namespace {

class GzipCompressor final : public Compressor {
 public:
  GzipCompressor() { memset(&z_, 0, sizeof z_); }
  ~GzipCompressor() override {
    if (init_) deflateEnd(&z_);
  }
  Status Init() {
    // Level 1: archives cross a fast link; ratio matters less than keeping up with the disk.
    if (deflateInit2(&z_, 1, Z_DEFLATED, 15 + 16, 8, Z_DEFAULT_STRATEGY) != Z_OK)
      return Internal("gzip: deflateInit2 failed");
    init_ = true;
    return Status::Ok();
  }
  Status Write(std::string_view in, std::string* out) override { return Run(in, Z_NO_FLUSH, out); }
  Status Finish(std::string* out) override { return Run({}, Z_FINISH, out); }

 private:
  Status Run(std::string_view in, int flush, std::string* out) {
    z_.next_in = reinterpret_cast<Bytef*>(const_cast<char*>(in.data()));
    z_.avail_in = static_cast<uInt>(in.size());
    for (;;) {
      size_t old = out->size();
      out->resize(old + kCodecChunk);
      z_.next_out = reinterpret_cast<Bytef*>(&(*out)[old]);
      z_.avail_out = static_cast<uInt>(kCodecChunk);
      int rc = deflate(&z_, flush);
      out->resize(old + kCodecChunk - z_.avail_out);
      if (rc == Z_STREAM_ERROR) return Internal("gzip: deflate failed");
      if (flush == Z_FINISH ? rc == Z_STREAM_END : (z_.avail_in == 0 && z_.avail_out != 0))
        return Status::Ok();
    }
  }
  z_stream z_;
  bool init_ = false;
};

class ZstdCompressor final : public Compressor {
 public:
  ~ZstdCompressor() override { ZSTD_freeCCtx(cctx_); }
  Status Init() {
    cctx_ = ZSTD_createCCtx();
    if (!cctx_) return Internal("zstd: out of memory");
    ZSTD_CCtx_setParameter(cctx_, ZSTD_c_compressionLevel, 3);
    return Status::Ok();
  }
  Status Write(std::string_view in, std::string* out) override {
    return Run(in, ZSTD_e_continue, out);
  }
  Status Finish(std::string* out) override { return Run({}, ZSTD_e_end, out); }

 private:
  Status Run(std::string_view in, ZSTD_EndDirective mode, std::string* out) {
    ZSTD_inBuffer ib{in.data(), in.size(), 0};
    for (;;) {
      size_t old = out->size();
      out->resize(old + kCodecChunk);
      ZSTD_outBuffer ob{&(*out)[old], kCodecChunk, 0};
      size_t rc = ZSTD_compressStream2(cctx_, &ob, &ib, mode);
      out->resize(old + ob.pos);
      if (ZSTD_isError(rc)) return Internal(fmt::format("zstd: {}", ZSTD_getErrorName(rc)));
      if (mode == ZSTD_e_end ? rc == 0 : ib.pos == ib.size) return Status::Ok();
    }
  }
  ZSTD_CCtx* cctx_ = nullptr;
};

}  // namespace

Result<std::unique_ptr<Compressor>> MakeCompressor(Compression c) {
  if (c == Compression::kGzip) {
    auto z = std::make_unique<GzipCompressor>();
    RETURN_IF_ERROR(z->Init());
    return std::unique_ptr<Compressor>(std::move(z));
  }
  if (c == Compression::kZstd) {
    auto z = std::make_unique<ZstdCompressor>();
    RETURN_IF_ERROR(z->Init());
    return std::unique_ptr<Compressor>(std::move(z));
  }
  return InvalidArgument("no compressor for plain tar");
}

struct Decompressor::Impl {
  ChunkFn out;
  Compression kind = Compression::kNone;
  bool detected = false;
  std::string head;  // the first bytes, until the format is known
  z_stream z;
  bool z_init = false;
  bool z_ended = false;  // the last gzip member ended
  ZSTD_DCtx* d = nullptr;
  size_t zstd_hint = 0;  // 0: at a frame boundary
  std::string buf;

  ~Impl() {
    if (z_init) inflateEnd(&z);
    ZSTD_freeDCtx(d);
  }

  Status Detect() {
    auto u = [&](size_t i) { return static_cast<unsigned char>(head[i]); };
    if (head.size() >= 2 && u(0) == 0x1f && u(1) == 0x8b) {
      kind = Compression::kGzip;
      memset(&z, 0, sizeof z);
      if (inflateInit2(&z, 15 + 16) != Z_OK) return Internal("gzip: inflateInit2 failed");
      z_init = true;
    } else if (head.size() >= 4 && u(0) == 0x28 && u(1) == 0xb5 && u(2) == 0x2f && u(3) == 0xfd) {
      kind = Compression::kZstd;
      d = ZSTD_createDCtx();
      if (!d) return Internal("zstd: out of memory");
    }
    detected = true;
    std::string h = std::move(head);
    head.clear();
    return Feed(h);
  }

  Status Feed(std::string_view in) {
    if (!detected) {
      head.append(in);
      if (head.size() < 4) return Status::Ok();
      return Detect();
    }
    if (in.empty()) return Status::Ok();
    switch (kind) {
      case Compression::kNone:
        return out(in);
      case Compression::kGzip:
        return Inflate(in);
      case Compression::kZstd:
        return Unzstd(in);
    }
    return Status::Ok();
  }

  Status Inflate(std::string_view in) {
    z.next_in = reinterpret_cast<Bytef*>(const_cast<char*>(in.data()));
    z.avail_in = static_cast<uInt>(in.size());
    buf.resize(kCodecChunk);
    while (z.avail_in > 0) {
      if (z_ended) {
        // Another member follows (concatenated gzip files are one stream).
        inflateReset(&z);
        z_ended = false;
      }
      z.next_out = reinterpret_cast<Bytef*>(buf.data());
      z.avail_out = static_cast<uInt>(buf.size());
      int rc = inflate(&z, Z_NO_FLUSH);
      size_t got = buf.size() - z.avail_out;
      if (got) RETURN_IF_ERROR(out(std::string_view(buf.data(), got)));
      if (rc == Z_STREAM_END) {
        z_ended = true;
        continue;
      }
      if (rc == Z_BUF_ERROR && got == 0) break;
      if (rc != Z_OK)
        return InvalidArgument(fmt::format("gzip: corrupt data ({})", z.msg ? z.msg : "?"));
    }
    return Status::Ok();
  }

  Status Unzstd(std::string_view in) {
    ZSTD_inBuffer ib{in.data(), in.size(), 0};
    buf.resize(kCodecChunk);
    bool full = false;
    // Until the input is used up and the last call left room in the output (a full output
    // buffer may mean the context holds more).
    while (ib.pos < ib.size || full) {
      ZSTD_outBuffer ob{buf.data(), buf.size(), 0};
      size_t rc = ZSTD_decompressStream(d, &ob, &ib);
      if (ZSTD_isError(rc))
        return InvalidArgument(fmt::format("zstd: corrupt data ({})", ZSTD_getErrorName(rc)));
      full = ob.pos == ob.size;
      if (ob.pos == 0 && ib.pos == ib.size) break;
      zstd_hint = rc;
      if (ob.pos) RETURN_IF_ERROR(out(std::string_view(buf.data(), ob.pos)));
    }
    return Status::Ok();
  }

  Status Finish() {
    if (!detected) {
      if (head.empty()) return Status::Ok();
      detected = true;
      std::string h = std::move(head);
      head.clear();
      return out(h);  // shorter than any magic: plain
    }
    if (kind == Compression::kGzip && !z_ended)
      return InvalidArgument("gzip: the compressed stream ends early");
    if (kind == Compression::kZstd && zstd_hint != 0)
      return InvalidArgument("zstd: the compressed stream ends early");
    return Status::Ok();
  }
};

Decompressor::Decompressor(ChunkFn out) : impl_(std::make_unique<Impl>()) {
  impl_->out = std::move(out);
}
Decompressor::~Decompressor() = default;
Status Decompressor::Feed(std::string_view in) { return impl_->Feed(in); }
Status Decompressor::Finish() { return impl_->Finish(); }

}  // namespace hutch::files
