// The payload of LocalLine and LocalClosed (protocol.h, types 101 and 102): which local
// connection of the in-sandbox message socket, and for LocalLine the line without its newline.
//
//   [u32 connection id][bytes]      (little-endian)
//
// Header-only and standard library only: the static agent and the host side both use it.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

namespace hutch::agent {

// Where programs in a session reach hutch (docs/agents.md): a unix stream socket the agent
// listens on inside the sandbox, speaking JSON lines.
inline constexpr const char* kMessageSocketDir = "/run/hutch";
inline constexpr const char* kMessageSocketPath = "/run/hutch/agents.sock";
// A longer line ends its connection.
inline constexpr size_t kMaxLocalLine = 1 << 20;

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

}  // namespace hutch::agent
