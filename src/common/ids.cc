#include "common/ids.h"

#include <sys/random.h>

#include <cerrno>
#include <cstdlib>

namespace hutch {

namespace {
constexpr std::string_view kBase32 = "abcdefghijklmnopqrstuvwxyz234567";
constexpr size_t kIdChars = 16;
}  // namespace

std::string RandomBytes(size_t n) {
  std::string out(n, '\0');
  size_t got = 0;
  while (got < n) {
    ssize_t r = getrandom(out.data() + got, n - got, 0);
    if (r < 0) {
      if (errno == EINTR) continue;
      std::abort();
    }
    got += static_cast<size_t>(r);
  }
  return out;
}

std::string Base32(std::string_view bytes) {
  std::string out;
  uint32_t buffer = 0;
  int bits = 0;
  for (unsigned char c : bytes) {
    buffer = (buffer << 8) | c;
    bits += 8;
    while (bits >= 5) {
      out += kBase32[(buffer >> (bits - 5)) & 31];
      bits -= 5;
    }
  }
  if (bits > 0) out += kBase32[(buffer << (5 - bits)) & 31];
  return out;
}

std::string HexEncode(std::string_view bytes) {
  static constexpr char kHex[] = "0123456789abcdef";
  std::string out;
  out.reserve(bytes.size() * 2);
  for (unsigned char c : bytes) {
    out += kHex[c >> 4];
    out += kHex[c & 15];
  }
  return out;
}

std::string NewId(std::string_view prefix) {
  std::string id(prefix);
  id += '_';
  id += Base32(RandomBytes(10));  // 80 bits = 16 base32 characters
  return id;
}

bool IsId(std::string_view s, std::string_view prefix) {
  if (s.size() != prefix.size() + 1 + kIdChars) return false;
  if (s.substr(0, prefix.size()) != prefix || s[prefix.size()] != '_') return false;
  for (char c : s.substr(prefix.size() + 1))
    if (kBase32.find(c) == std::string_view::npos) return false;
  return true;
}

}  // namespace hutch
