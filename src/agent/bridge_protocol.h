// The payload of LocalLine and LocalClosed (protocol.h, types 101 and 102): which local
// connection of the in-sandbox message socket, and for LocalLine the line without its newline.
//
//   [u32 connection id][bytes]      (little-endian)
//
// And ActivityRead (type 39): the activity lines programs in the session wrote to the same
// socket (docs/agents.md, "Activity lines"), which the agent keeps numbered until a reader says
// it has them. The request is [u64 after][u32 len][instance]: an agent whose instance it names
// forgets the lines up to `after` (another agent — the sandbox was made again — forgets nothing,
// and answers from its first), and answers those past it:
//
//   [u32 len][instance][u64 dropped][u32 n] n × ([u64 seq][u64 at unix ms][u32 len][line])
//
// Header-only and standard library only: the static agent and the host side both use it.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace hutch::agent {

// Where programs in a session reach hutch (docs/agents.md): a unix stream socket the agent
// listens on inside the sandbox, speaking JSON lines.
inline constexpr const char* kMessageSocketDir = "/run/hutch";
inline constexpr const char* kMessageSocketPath = "/run/hutch/agents.sock";
// A longer line ends its connection.
inline constexpr size_t kMaxLocalLine = 1 << 20;

// The bin directory inside a sandbox: the agent's own executable (bind-mounted read-only) and
// hutch-milestone, a link to it (docs/agents.md).
inline constexpr const char* kAgentBinDir = "/run/hutch/bin";
inline constexpr const char* kAgentInSandbox = "/run/hutch/bin/hutch-agent";
inline constexpr const char* kMilestoneInSandbox = "/run/hutch/bin/hutch-milestone";
// An activity line longer than this is dropped (counted in `dropped`).
inline constexpr size_t kMaxActivityLine = 64 * 1024;

struct LocalLine {
  uint32_t conn = 0;
  std::string line;
};

inline std::string EncodeLocalLine(uint32_t conn, std::string_view line) {
  std::string out(4, '\0');
  for (int i = 0; i < 4; ++i) out[i] = static_cast<char>((conn >> (8 * i)) & 0xff);
  out.append(line);
  return out;
}

inline bool DecodeLocalLine(std::string_view payload, LocalLine* out) {
  if (payload.size() < 4) return false;
  uint32_t conn = 0;
  for (int i = 0; i < 4; ++i)
    conn |= static_cast<uint32_t>(static_cast<unsigned char>(payload[i])) << (8 * i);
  out->conn = conn;
  out->line.assign(payload.substr(4));
  return true;
}

struct ActivityLine {
  uint64_t seq = 0;    // numbered from 1 per agent instance, increasing
  uint64_t at_ms = 0;  // when the agent read it (unix milliseconds)
  std::string line;
};

struct ActivityBatch {
  std::string instance;  // this agent process's random id: seq restarts with a new agent
  uint64_t dropped = 0;  // lines lost since the agent started (the buffer was full, too long)
  std::vector<ActivityLine> lines;
};

namespace wire_detail {
inline void PutU32(std::string& out, uint32_t v) {
  for (int i = 0; i < 4; ++i) out.push_back(static_cast<char>((v >> (8 * i)) & 0xff));
}
inline void PutU64(std::string& out, uint64_t v) {
  for (int i = 0; i < 8; ++i) out.push_back(static_cast<char>((v >> (8 * i)) & 0xff));
}
inline bool GetU32(std::string_view& in, uint32_t* v) {
  if (in.size() < 4) return false;
  *v = 0;
  for (int i = 0; i < 4; ++i)
    *v |= static_cast<uint32_t>(static_cast<unsigned char>(in[i])) << (8 * i);
  in.remove_prefix(4);
  return true;
}
inline bool GetU64(std::string_view& in, uint64_t* v) {
  if (in.size() < 8) return false;
  *v = 0;
  for (int i = 0; i < 8; ++i)
    *v |= static_cast<uint64_t>(static_cast<unsigned char>(in[i])) << (8 * i);
  in.remove_prefix(8);
  return true;
}
inline bool GetString(std::string_view& in, std::string* s) {
  uint32_t n = 0;
  if (!GetU32(in, &n) || in.size() < n) return false;
  s->assign(in.substr(0, n));
  in.remove_prefix(n);
  return true;
}
}  // namespace wire_detail

inline std::string EncodeActivityRead(std::string_view instance, uint64_t after) {
  std::string out;
  wire_detail::PutU64(out, after);
  wire_detail::PutU32(out, static_cast<uint32_t>(instance.size()));
  out += instance;
  return out;
}

inline bool DecodeActivityRead(std::string_view payload, std::string* instance, uint64_t* after) {
  return wire_detail::GetU64(payload, after) && wire_detail::GetString(payload, instance) &&
         payload.empty();
}

inline std::string EncodeActivityBatch(const ActivityBatch& b) {
  std::string out;
  wire_detail::PutU32(out, static_cast<uint32_t>(b.instance.size()));
  out += b.instance;
  wire_detail::PutU64(out, b.dropped);
  wire_detail::PutU32(out, static_cast<uint32_t>(b.lines.size()));
  for (const ActivityLine& l : b.lines) {
    wire_detail::PutU64(out, l.seq);
    wire_detail::PutU64(out, l.at_ms);
    wire_detail::PutU32(out, static_cast<uint32_t>(l.line.size()));
    out += l.line;
  }
  return out;
}

inline bool DecodeActivityBatch(std::string_view in, ActivityBatch* b) {
  uint32_t n = 0;
  if (!wire_detail::GetString(in, &b->instance) || !wire_detail::GetU64(in, &b->dropped) ||
      !wire_detail::GetU32(in, &n))
    return false;
  b->lines.clear();
  for (uint32_t i = 0; i < n; ++i) {
    ActivityLine l;
    if (!wire_detail::GetU64(in, &l.seq) || !wire_detail::GetU64(in, &l.at_ms) ||
        !wire_detail::GetString(in, &l.line))
      return false;
    b->lines.push_back(std::move(l));
  }
  return in.empty();
}

}  // namespace hutch::agent
