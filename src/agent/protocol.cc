#include "agent/protocol.h"

#include "agent/wire.h"

namespace hutch::agent {

namespace {

uint32_t LoadU32(const char* p) {
  uint32_t r = 0;
  for (int i = 0; i < 4; ++i) r |= uint32_t{static_cast<uint8_t>(p[i])} << (8 * i);
  return r;
}

bool Finish(WireReader& r, std::string_view what, std::string* error) {
  if (r.ExpectEnd()) return true;
  *error = std::string(what) + ": " + r.error();
  return false;
}

}  // namespace

std::string MessageTypeName(MessageType type) {
  switch (type) {
    case MessageType::kHello:
      return "Hello";
    case MessageType::kError:
      return "Error";
    case MessageType::kExecRequest:
      return "ExecRequest";
    case MessageType::kExecResult:
      return "ExecResult";
    case MessageType::kStreamExec:
      return "StreamExec";
    case MessageType::kStarted:
      return "Started";
    case MessageType::kStdin:
      return "Stdin";
    case MessageType::kStdout:
      return "Stdout";
    case MessageType::kStderr:
      return "Stderr";
    case MessageType::kWindow:
      return "Window";
    case MessageType::kResize:
      return "Resize";
    case MessageType::kSignal:
      return "Signal";
    case MessageType::kExit:
      return "Exit";
    case MessageType::kProcessStart:
      return "ProcessStart";
    case MessageType::kProcessList:
      return "ProcessList";
    case MessageType::kProcessAttach:
      return "ProcessAttach";
    case MessageType::kProcessSignal:
      return "ProcessSignal";
    case MessageType::kProcessStdin:
      return "ProcessStdin";
    case MessageType::kTcpConnect:
      return "TcpConnect";
    case MessageType::kServiceStart:
      return "ServiceStart";
    case MessageType::kServiceList:
      return "ServiceList";
    case MessageType::kServiceStop:
      return "ServiceStop";
    case MessageType::kPortList:
      return "PortList";
    case MessageType::kLogRead:
      return "LogRead";
    case MessageType::kActivityRead:
      return "ActivityRead";
    case MessageType::kInterrupt:
      return "Interrupt";
    case MessageType::kFileStat:
      return "FileStat";
    case MessageType::kFileList:
      return "FileList";
    case MessageType::kFileRead:
      return "FileRead";
    case MessageType::kFileWrite:
      return "FileWrite";
    case MessageType::kFileRemove:
      return "FileRemove";
    case MessageType::kFileMkdir:
      return "FileMkdir";
    case MessageType::kFileMove:
      return "FileMove";
    case MessageType::kFileArchive:
      return "FileArchive";
    case MessageType::kFileExtract:
      return "FileExtract";
    case MessageType::kFileWatch:
      return "FileWatch";
    case MessageType::kFileOpened:
      return "FileOpened";
    case MessageType::kFileRange:
      return "FileRange";
    case MessageType::kFileData:
      return "FileData";
    case MessageType::kFileEntry:
      return "FileEntry";
    case MessageType::kFileListing:
      return "FileListing";
    case MessageType::kFileExtracted:
      return "FileExtracted";
    case MessageType::kFileEvents:
      return "FileEvents";
    case MessageType::kFileError:
      return "FileError";
    case MessageType::kMessageAttach:
      return "MessageAttach";
    case MessageType::kLocalLine:
      return "LocalLine";
    case MessageType::kLocalClosed:
      return "LocalClosed";
  }
  return "type " + std::to_string(static_cast<int>(type));
}

void AppendFrame(std::string* out, MessageType type, uint32_t stream_id, std::string_view payload) {
  WireWriter w;
  w.U32(static_cast<uint32_t>(payload.size()));
  w.U8(static_cast<uint8_t>(type));
  w.U32(stream_id);
  out->append(w.data());
  out->append(payload);
}

std::string EncodeFrame(MessageType type, uint32_t stream_id, std::string_view payload) {
  std::string out;
  out.reserve(kFrameHeaderSize + payload.size());
  AppendFrame(&out, type, stream_id, payload);
  return out;
}

FrameParser::Result FrameParser::Next(Frame* out, std::string* error) {
  size_t avail = buffer_.size() - consumed_;
  if (avail < kFrameHeaderSize) return Result::kNeedMore;
  const char* p = buffer_.data() + consumed_;
  uint32_t len = LoadU32(p);
  if (len > max_payload_) {
    *error = "frame payload of " + std::to_string(len) + " bytes exceeds the maximum of " +
             std::to_string(max_payload_);
    return Result::kError;
  }
  if (avail < kFrameHeaderSize + len) return Result::kNeedMore;
  out->type = static_cast<MessageType>(static_cast<uint8_t>(p[4]));
  out->stream_id = LoadU32(p + 5);
  out->payload.assign(p + kFrameHeaderSize, len);
  consumed_ += kFrameHeaderSize + len;
  // Compact once the consumed prefix dominates, so the buffer does not grow without bound.
  if (consumed_ == buffer_.size()) {
    buffer_.clear();
    consumed_ = 0;
  } else if (consumed_ > 4096 && consumed_ * 2 > buffer_.size()) {
    buffer_.erase(0, consumed_);
    consumed_ = 0;
  }
  return Result::kFrame;
}

size_t FrameParser::BytesWanted() const {
  size_t avail = buffer_.size() - consumed_;
  if (avail < kFrameHeaderSize) return kFrameHeaderSize - avail;
  uint32_t len = LoadU32(buffer_.data() + consumed_);
  size_t total = kFrameHeaderSize + static_cast<size_t>(len);
  return total > avail ? total - avail : 1;
}

std::string_view ErrorCodeName(ErrorCode code) {
  switch (code) {
    case ErrorCode::kInternal:
      return "internal";
    case ErrorCode::kInvalidArgument:
      return "invalid_argument";
    case ErrorCode::kVersionMismatch:
      return "version_mismatch";
    case ErrorCode::kMalformed:
      return "malformed";
    case ErrorCode::kUnsupported:
      return "unsupported";
    case ErrorCode::kResourceExhausted:
      return "resource_exhausted";
    case ErrorCode::kUnavailable:
      return "unavailable";
    case ErrorCode::kNotFound:
      return "not_found";
    case ErrorCode::kAlreadyExists:
      return "already_exists";
    case ErrorCode::kUnauthenticated:
      return "unauthenticated";
  }
  return "unknown";
}

std::string EncodeHello(const Hello& m) {
  WireWriter w;
  w.U32(m.version);
  w.String(m.peer);
  if (!m.secret.empty()) w.String(m.secret);
  return w.Take();
}

bool DecodeHello(std::string_view payload, Hello* out, std::string* error) {
  WireReader r(payload);
  r.U32(&out->version);
  r.String(&out->peer, 256);
  out->secret.clear();
  if (r.ok() && r.remaining() > 0) r.String(&out->secret, kMaxSecretLen);
  return Finish(r, "Hello", error);
}

namespace {

// Equal, in time that depends on the lengths only (not on where the first difference is).
bool ConstantTimeEqual(std::string_view a, std::string_view b) {
  if (a.size() != b.size()) return false;
  volatile unsigned char diff = 0;
  for (size_t i = 0; i < a.size(); ++i)
    diff = diff | static_cast<unsigned char>(static_cast<unsigned char>(a[i]) ^
                                             static_cast<unsigned char>(b[i]));
  return diff == 0;
}

}  // namespace

bool AcceptClientHello(const Hello& hello, std::string_view expected_secret, std::string_view me,
                       ErrorMessage* refusal) {
  if (hello.version != kProtocolVersion) {
    *refusal = {ErrorCode::kVersionMismatch,
                std::string(me) + " speaks agent protocol " + std::to_string(kProtocolVersion) +
                    ", " + hello.peer + " speaks " + std::to_string(hello.version) +
                    ": recreate the session with a matching hutch-agent"};
    return false;
  }
  if (!expected_secret.empty() && !ConstantTimeEqual(hello.secret, expected_secret)) {
    // Which of the two (missing or wrong) is not said: it tells a prober nothing.
    *refusal = {ErrorCode::kUnauthenticated, "the Hello does not carry this sandbox's secret"};
    return false;
  }
  return true;
}

std::string EncodeError(const ErrorMessage& m) {
  WireWriter w;
  w.U32(static_cast<uint32_t>(m.code));
  w.String(m.message);
  return w.Take();
}

bool DecodeError(std::string_view payload, ErrorMessage* out, std::string* error) {
  WireReader r(payload);
  uint32_t code = 0;
  r.U32(&code);
  r.String(&out->message, 64 * 1024);
  // Unknown codes from a newer peer are kept as they are; ErrorCodeName says "unknown".
  out->code = static_cast<ErrorCode>(code);
  return Finish(r, "Error", error);
}

std::string EncodeExecRequest(const core::ExecRequest& m) {
  WireWriter w;
  w.StringList(m.argv);
  w.StringMap(m.env);
  w.String(m.cwd);
  w.String(m.stdin_data);
  w.I64(m.timeout_ms);
  w.I64(m.max_output_bytes);
  return w.Take();
}

bool DecodeExecRequest(std::string_view payload, core::ExecRequest* out, std::string* error) {
  WireReader r(payload);
  r.StringList(&out->argv, kMaxArgs, kMaxStringLen);
  r.StringMap(&out->env, kMaxEnv, kMaxStringLen);
  r.String(&out->cwd, 4096);
  r.String(&out->stdin_data, kMaxStringLen);
  r.I64(&out->timeout_ms);
  r.I64(&out->max_output_bytes);
  if (!Finish(r, "ExecRequest", error)) return false;
  if (out->argv.empty() || out->argv[0].empty()) {
    *error = "ExecRequest: argv is empty";
    return false;
  }
  for (const auto& a : out->argv) {
    if (a.find('\0') != std::string::npos) {
      *error = "ExecRequest: argv contains a NUL byte";
      return false;
    }
  }
  for (const auto& [k, v] : out->env) {
    if (k.empty() || k.find('=') != std::string::npos || k.find('\0') != std::string::npos ||
        v.find('\0') != std::string::npos) {
      *error = "ExecRequest: invalid env name or value";
      return false;
    }
  }
  if (out->cwd.find('\0') != std::string::npos) {
    *error = "ExecRequest: cwd contains a NUL byte";
    return false;
  }
  if (out->timeout_ms < 0 || out->max_output_bytes < 0) {
    *error = "ExecRequest: negative timeout_ms or max_output_bytes";
    return false;
  }
  return true;
}

std::string EncodeExecResult(const core::ExecResult& m) {
  WireWriter w;
  w.I32(m.exit_code);
  w.I32(m.signal);
  w.String(m.stdout_data);
  w.String(m.stderr_data);
  w.Bool(m.timed_out);
  w.Bool(m.truncated);
  w.I64(m.duration_ms);
  return w.Take();
}

bool DecodeExecResult(std::string_view payload, core::ExecResult* out, std::string* error) {
  WireReader r(payload);
  int32_t exit_code = 0, signal = 0;
  r.I32(&exit_code);
  r.I32(&signal);
  r.String(&out->stdout_data, kMaxStringLen);
  r.String(&out->stderr_data, kMaxStringLen);
  r.Bool(&out->timed_out);
  r.Bool(&out->truncated);
  r.I64(&out->duration_ms);
  out->exit_code = exit_code;
  out->signal = signal;
  return Finish(r, "ExecResult", error);
}

}  // namespace hutch::agent
