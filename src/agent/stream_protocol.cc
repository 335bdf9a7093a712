#include "agent/stream_protocol.h"

#include <algorithm>

#include "agent/protocol.h"
#include "agent/wire.h"

namespace hutch::agent {

namespace {

bool Finish(WireReader& r, std::string_view what, std::string* error) {
  if (r.ExpectEnd()) return true;
  *error = std::string(what) + ": " + r.error();
  return false;
}

// An ExecRequest nested in another message: its own encoding as one string, so it is checked
// by DecodeExecRequest exactly as a run-to-completion request is.
bool ReadExec(WireReader& r, core::ExecRequest* out, std::string_view what, std::string* error) {
  std::string nested;
  if (!r.String(&nested, kMaxStringLen)) {
    *error = std::string(what) + ": " + r.error();
    return false;
  }
  if (!DecodeExecRequest(nested, out, error)) {
    *error = std::string(what) + ": " + *error;
    return false;
  }
  return true;
}

bool CheckSelector(const std::string& selector, std::string_view what, std::string* error) {
  if (selector.empty() || selector.find('\0') != std::string::npos) {
    *error = std::string(what) + ": empty or invalid process selector";
    return false;
  }
  return true;
}

}  // namespace

std::string EncodeStreamExecRequest(const StreamExecRequest& m) {
  WireWriter w;
  w.String(EncodeExecRequest(m.exec));
  w.Bool(m.tty);
  w.U32(m.rows);
  w.U32(m.cols);
  w.U32(m.window);
  return w.Take();
}

bool DecodeStreamExecRequest(std::string_view payload, StreamExecRequest* out, std::string* error) {
  WireReader r(payload);
  if (!ReadExec(r, &out->exec, "StreamExec", error)) return false;
  uint32_t rows = 0, cols = 0;
  r.Bool(&out->tty);
  r.U32(&rows);
  r.U32(&cols);
  r.U32(&out->window);
  if (!Finish(r, "StreamExec", error)) return false;
  if (rows == 0 || cols == 0 || rows > 10000 || cols > 10000) {
    *error = "StreamExec: rows and cols must be 1..10000";
    return false;
  }
  if (out->window == 0 || out->window > kMaxWindow) {
    *error = "StreamExec: window must be 1.." + std::to_string(kMaxWindow);
    return false;
  }
  out->rows = static_cast<uint16_t>(rows);
  out->cols = static_cast<uint16_t>(cols);
  return true;
}

std::string EncodeExitInfo(const ExitInfo& m) {
  WireWriter w;
  w.Bool(m.exited);
  w.I32(m.exit_code);
  w.I32(m.signal);
  w.Bool(m.timed_out);
  w.I64(m.duration_ms);
  w.U64(m.dropped_bytes);
  return w.Take();
}

bool DecodeExitInfo(std::string_view payload, ExitInfo* out, std::string* error) {
  WireReader r(payload);
  r.Bool(&out->exited);
  r.I32(&out->exit_code);
  r.I32(&out->signal);
  r.Bool(&out->timed_out);
  r.I64(&out->duration_ms);
  r.U64(&out->dropped_bytes);
  return Finish(r, "Exit", error);
}

std::string EncodeProcessList(const std::vector<ProcessInfo>& m) {
  WireWriter w;
  w.U32(static_cast<uint32_t>(m.size()));
  for (const ProcessInfo& p : m) {
    w.I32(p.pid);
    w.String(p.tag);
    w.StringList(p.argv);
    w.Bool(p.running);
    w.I32(p.exit_code);
    w.I32(p.signal);
    w.Bool(p.timed_out);
    w.I64(p.started_unix_ms);
    w.I64(p.ended_unix_ms);
    w.U64(p.output_bytes);
    w.U64(p.dropped_bytes);
  }
  return w.Take();
}

bool DecodeProcessList(std::string_view payload, std::vector<ProcessInfo>* out,
                       std::string* error) {
  WireReader r(payload);
  uint32_t n = 0;
  r.U32(&n);
  // Each entry takes at least 50 bytes: a count beyond what the payload can hold is malformed.
  if (r.ok() && n > r.remaining() / 50) {
    *error = "ProcessList: count " + std::to_string(n) + " exceeds the payload";
    return false;
  }
  out->clear();
  for (uint32_t i = 0; i < n && r.ok(); ++i) {
    ProcessInfo p;
    r.I32(&p.pid);
    r.String(&p.tag, kMaxTagLen);
    r.StringList(&p.argv, kMaxArgs, kMaxStringLen);
    r.Bool(&p.running);
    r.I32(&p.exit_code);
    r.I32(&p.signal);
    r.Bool(&p.timed_out);
    r.I64(&p.started_unix_ms);
    r.I64(&p.ended_unix_ms);
    r.U64(&p.output_bytes);
    r.U64(&p.dropped_bytes);
    out->push_back(std::move(p));
  }
  return Finish(r, "ProcessList", error);
}

std::string EncodeProcessStartRequest(const ProcessStartRequest& m) {
  WireWriter w;
  w.String(EncodeExecRequest(m.exec));
  w.String(m.tag);
  return w.Take();
}

bool DecodeProcessStartRequest(std::string_view payload, ProcessStartRequest* out,
                               std::string* error) {
  WireReader r(payload);
  if (!ReadExec(r, &out->exec, "ProcessStart", error)) return false;
  r.String(&out->tag, kMaxTagLen);
  if (!Finish(r, "ProcessStart", error)) return false;
  if (!out->tag.empty() && !IsValidTag(out->tag)) {
    *error = "ProcessStart: tag must be 1 to 128 of [A-Za-z0-9._-] and not all digits";
    return false;
  }
  return true;
}

namespace {

void WriteServiceSpec(WireWriter& w, const ServiceSpec& m) {
  w.String(m.name);
  w.String(EncodeExecRequest(m.exec));
  w.U32(m.port);
  w.String(m.restart);
  w.String(m.health.kind);
  w.String(m.health.http_path);
  w.U32(m.health.interval_ms);
  w.U32(m.health.timeout_ms);
  w.U32(m.health.retries);
}

bool ReadServiceSpec(WireReader& r, ServiceSpec* out, std::string* error) {
  r.String(&out->name, kMaxTagLen);
  if (!ReadExec(r, &out->exec, "ServiceSpec", error)) return false;
  uint32_t port = 0;
  r.U32(&port);
  r.String(&out->restart, 32);
  r.String(&out->health.kind, 32);
  r.String(&out->health.http_path, 1024);
  r.U32(&out->health.interval_ms);
  r.U32(&out->health.timeout_ms);
  r.U32(&out->health.retries);
  if (!r.ok()) {
    *error = "ServiceSpec: " + r.error();
    return false;
  }
  if (port > 65535) {
    *error = "ServiceSpec: port must be 1..65535";
    return false;
  }
  out->port = static_cast<uint16_t>(port);
  return true;
}

}  // namespace

std::string EncodeServiceSpec(const ServiceSpec& m) {
  WireWriter w;
  WriteServiceSpec(w, m);
  return w.Take();
}

bool DecodeServiceSpec(std::string_view payload, ServiceSpec* out, std::string* error) {
  WireReader r(payload);
  if (!ReadServiceSpec(r, out, error)) return false;
  if (!Finish(r, "ServiceSpec", error)) return false;
  std::string bad = core::ServiceSpecError(*out);
  if (!bad.empty()) {
    *error = "ServiceSpec: " + bad;
    return false;
  }
  return true;
}

std::string EncodeServiceList(const std::vector<ServiceInfo>& m) {
  WireWriter w;
  w.U32(static_cast<uint32_t>(m.size()));
  for (const ServiceInfo& s : m) {
    WriteServiceSpec(w, s.spec);
    w.String(s.state);
    w.String(s.health);
    w.String(s.health_message);
    w.I32(s.pid);
    w.U32(s.restarts);
    w.I32(s.last_exit_code);
    w.I32(s.last_signal);
    w.I64(s.started_unix_ms);
    w.I64(s.next_restart_unix_ms);
  }
  return w.Take();
}

bool DecodeServiceList(std::string_view payload, std::vector<ServiceInfo>* out,
                       std::string* error) {
  WireReader r(payload);
  uint32_t n = 0;
  r.U32(&n);
  // Each entry takes at least 80 bytes: a count beyond what the payload can hold is malformed.
  if (r.ok() && n > r.remaining() / 80) {
    *error = "ServiceList: count " + std::to_string(n) + " exceeds the payload";
    return false;
  }
  out->clear();
  for (uint32_t i = 0; i < n && r.ok(); ++i) {
    ServiceInfo s;
    if (!ReadServiceSpec(r, &s.spec, error)) return false;
    r.String(&s.state, 32);
    r.String(&s.health, 32);
    r.String(&s.health_message, 1024);
    r.I32(&s.pid);
    r.U32(&s.restarts);
    r.I32(&s.last_exit_code);
    r.I32(&s.last_signal);
    r.I64(&s.started_unix_ms);
    r.I64(&s.next_restart_unix_ms);
    out->push_back(std::move(s));
  }
  return Finish(r, "ServiceList", error);
}

std::string EncodeTcpConnectRequest(const TcpConnectRequest& m) {
  WireWriter w;
  w.U32(m.port);
  w.U32(m.window);
  return w.Take();
}

bool DecodeTcpConnectRequest(std::string_view payload, TcpConnectRequest* out, std::string* error) {
  WireReader r(payload);
  uint32_t port = 0;
  r.U32(&port);
  r.U32(&out->window);
  if (!Finish(r, "TcpConnect", error)) return false;
  if (port == 0 || port > 65535) {
    *error = "TcpConnect: port must be 1..65535";
    return false;
  }
  out->port = static_cast<uint16_t>(port);
  if (out->window == 0 || out->window > kMaxWindow) {
    *error = "TcpConnect: window must be 1.." + std::to_string(kMaxWindow);
    return false;
  }
  return true;
}

std::string EncodeProcessAttachRequest(const ProcessAttachRequest& m) {
  WireWriter w;
  w.String(m.selector);
  w.Bool(m.follow);
  w.U32(m.window);
  return w.Take();
}

bool DecodeProcessAttachRequest(std::string_view payload, ProcessAttachRequest* out,
                                std::string* error) {
  WireReader r(payload);
  r.String(&out->selector, kMaxTagLen);
  r.Bool(&out->follow);
  r.U32(&out->window);
  if (!Finish(r, "ProcessAttach", error)) return false;
  if (out->window == 0 || out->window > kMaxWindow) {
    *error = "ProcessAttach: window must be 1.." + std::to_string(kMaxWindow);
    return false;
  }
  return CheckSelector(out->selector, "ProcessAttach", error);
}

std::string EncodeProcessSignalRequest(const ProcessSignalRequest& m) {
  WireWriter w;
  w.String(m.selector);
  w.I32(m.signal);
  return w.Take();
}

bool DecodeProcessSignalRequest(std::string_view payload, ProcessSignalRequest* out,
                                std::string* error) {
  WireReader r(payload);
  r.String(&out->selector, kMaxTagLen);
  r.I32(&out->signal);
  if (!Finish(r, "ProcessSignal", error)) return false;
  if (out->signal < 1 || out->signal > 64) {
    *error = "ProcessSignal: signal must be 1..64";
    return false;
  }
  return CheckSelector(out->selector, "ProcessSignal", error);
}

std::string EncodeProcessStdinRequest(const ProcessStdinRequest& m) {
  WireWriter w;
  w.String(m.selector);
  w.String(m.data);
  w.Bool(m.close);
  return w.Take();
}

bool DecodeProcessStdinRequest(std::string_view payload, ProcessStdinRequest* out,
                               std::string* error) {
  WireReader r(payload);
  r.String(&out->selector, kMaxTagLen);
  r.String(&out->data, kMaxStringLen);
  r.Bool(&out->close);
  if (!Finish(r, "ProcessStdin", error)) return false;
  return CheckSelector(out->selector, "ProcessStdin", error);
}

std::string EncodeU32(uint32_t v) {
  WireWriter w;
  w.U32(v);
  return w.Take();
}

std::string EncodeI32(int32_t v) {
  WireWriter w;
  w.I32(v);
  return w.Take();
}

std::string EncodeResize(uint16_t rows, uint16_t cols) {
  WireWriter w;
  w.U32(rows);
  w.U32(cols);
  return w.Take();
}

bool DecodeU32(std::string_view payload, uint32_t* out, std::string* error) {
  WireReader r(payload);
  r.U32(out);
  return Finish(r, "u32", error);
}

bool DecodeI32(std::string_view payload, int32_t* out, std::string* error) {
  WireReader r(payload);
  r.I32(out);
  return Finish(r, "i32", error);
}

bool DecodeResize(std::string_view payload, uint16_t* rows, uint16_t* cols, std::string* error) {
  WireReader r(payload);
  uint32_t rr = 0, cc = 0;
  r.U32(&rr);
  r.U32(&cc);
  if (!Finish(r, "Resize", error)) return false;
  if (rr == 0 || cc == 0 || rr > 10000 || cc > 10000) {
    *error = "Resize: rows and cols must be 1..10000";
    return false;
  }
  *rows = static_cast<uint16_t>(rr);
  *cols = static_cast<uint16_t>(cc);
  return true;
}

std::string EncodePortList(const std::vector<ListeningPort>& m) {
  WireWriter w;
  w.U32(static_cast<uint32_t>(m.size()));
  for (const ListeningPort& p : m) {
    w.U32(p.port);
    w.String(p.address);
  }
  return w.Take();
}

std::string EncodeLogReadRequest(const LogReadRequest& m) {
  WireWriter w;
  w.U64(m.offset);
  w.U32(m.max_bytes);
  return w.Take();
}

bool DecodeLogReadRequest(std::string_view payload, LogReadRequest* out, std::string* error) {
  WireReader r(payload);
  r.U64(&out->offset);
  r.U32(&out->max_bytes);
  if (r.ok() && (out->max_bytes == 0 || out->max_bytes > kMaxLogChunk)) {
    *error = "LogRead: max_bytes must be 1.." + std::to_string(kMaxLogChunk);
    return false;
  }
  return Finish(r, "LogRead", error);
}

std::string EncodeLogChunk(const LogChunk& m) {
  WireWriter w;
  w.U64(m.size);
  w.String(m.data);
  return w.Take();
}

bool DecodeLogChunk(std::string_view payload, LogChunk* out, std::string* error) {
  WireReader r(payload);
  r.U64(&out->size);
  r.String(&out->data, kMaxLogChunk);
  return Finish(r, "LogChunk", error);
}

bool DecodePortList(std::string_view payload, std::vector<ListeningPort>* out, std::string* error) {
  WireReader r(payload);
  uint32_t n = 0;
  r.U32(&n);
  // Each entry takes at least 8 bytes: a count beyond what the payload can hold is malformed.
  if (r.ok() && n > r.remaining() / 8) {
    *error = "PortList: count " + std::to_string(n) + " exceeds the payload";
    return false;
  }
  out->clear();
  for (uint32_t i = 0; i < n && r.ok(); ++i) {
    ListeningPort p;
    uint32_t port = 0;
    r.U32(&port);
    r.String(&p.address, 64);
    if (r.ok() && (port == 0 || port > 65535)) {
      *error = "PortList: port " + std::to_string(port) + " out of range";
      return false;
    }
    p.port = static_cast<uint16_t>(port);
    out->push_back(std::move(p));
  }
  return Finish(r, "PortList", error);
}

namespace {

int HexDigit(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

// "0100007F" (v4, host byte order as the kernel prints it) or 32 digits (v6, four host-order
// words) → the address's 4 or 16 bytes in network order; false when malformed.
bool ParseProcAddress(std::string_view hex, bool v6, unsigned char* bytes) {
  size_t words = v6 ? 4 : 1;
  if (hex.size() != words * 8) return false;
  for (size_t w = 0; w < words; ++w) {
    uint32_t value = 0;
    for (size_t i = 0; i < 8; ++i) {
      int d = HexDigit(hex[w * 8 + i]);
      if (d < 0) return false;
      value = (value << 4) | static_cast<uint32_t>(d);
    }
    // The kernel prints each 32-bit word as a number in host (little-endian) order.
    for (size_t b = 0; b < 4; ++b) bytes[w * 4 + b] = static_cast<unsigned char>(value >> (8 * b));
  }
  return true;
}

std::string FormatAddress(const unsigned char* b, bool v6) {
  if (!v6) {
    return std::to_string(b[0]) + "." + std::to_string(b[1]) + "." + std::to_string(b[2]) + "." +
           std::to_string(b[3]);
  }
  // Short forms for what a listener uses; other addresses in full hex groups.
  static const unsigned char kAny[16] = {};
  static const unsigned char kLoopback[16] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1};
  if (std::equal(b, b + 16, kAny)) return "::";
  if (std::equal(b, b + 16, kLoopback)) return "::1";
  static const char kHex[] = "0123456789abcdef";
  std::string out;
  for (int g = 0; g < 8; ++g) {
    if (g > 0) out += ':';
    unsigned v = (static_cast<unsigned>(b[2 * g]) << 8) | b[2 * g + 1];
    out += kHex[(v >> 12) & 15];
    out += kHex[(v >> 8) & 15];
    out += kHex[(v >> 4) & 15];
    out += kHex[v & 15];
  }
  return out;
}

}  // namespace

void ParseProcNetTcp(std::string_view text, bool v6, std::vector<ListeningPort>* out) {
  constexpr std::string_view kListen = "0A";
  bool header = true;
  while (!text.empty()) {
    size_t eol = text.find('\n');
    std::string_view line = text.substr(0, eol);
    text = eol == std::string_view::npos ? std::string_view() : text.substr(eol + 1);
    if (header) {  // "  sl  local_address rem_address   st …"
      header = false;
      continue;
    }
    // Fields: "sl:" local_address rem_address st …
    std::string_view fields[4];
    size_t n = 0;
    size_t pos = 0;
    while (n < 4) {
      while (pos < line.size() && line[pos] == ' ') ++pos;
      if (pos >= line.size()) break;
      size_t end = line.find(' ', pos);
      if (end == std::string_view::npos) end = line.size();
      fields[n++] = line.substr(pos, end - pos);
      pos = end;
    }
    if (n < 4 || fields[3] != kListen) continue;
    std::string_view local = fields[1];
    size_t colon = local.find(':');
    if (colon == std::string_view::npos || local.size() - colon - 1 != 4) continue;
    unsigned char bytes[16];
    if (!ParseProcAddress(local.substr(0, colon), v6, bytes)) continue;
    uint32_t port = 0;
    bool ok = true;
    for (char c : local.substr(colon + 1)) {
      int d = HexDigit(c);
      if (d < 0) ok = false;
      port = (port << 4) | static_cast<uint32_t>(d < 0 ? 0 : d);
    }
    if (!ok || port == 0) continue;
    out->push_back(ListeningPort{static_cast<uint16_t>(port), FormatAddress(bytes, v6)});
  }
}

}  // namespace hutch::agent
