#include "core/cidr.h"

#include <algorithm>

#include <fmt/format.h>

namespace hutch::core {

namespace {

// A decimal number of 1–3 digits without a leading zero, at most `max`; false otherwise.
bool ParseSmallDecimal(std::string_view s, int max, int* out) {
  if (s.empty() || s.size() > 3) return false;
  if (s.size() > 1 && s[0] == '0') return false;
  int v = 0;
  for (char c : s) {
    if (c < '0' || c > '9') return false;
    v = v * 10 + (c - '0');
  }
  if (v > max) return false;
  *out = v;
  return true;
}

bool ParseAddress(std::string_view text, uint32_t* out) {
  uint32_t addr = 0;
  for (int i = 0; i < 4; ++i) {
    size_t dot = text.find('.');
    std::string_view part = i < 3 ? text.substr(0, dot) : text;
    if (i < 3 && dot == std::string_view::npos) return false;
    int octet = 0;
    if (!ParseSmallDecimal(part, 255, &octet)) return false;
    addr = addr << 8 | static_cast<uint32_t>(octet);
    if (i < 3) text.remove_prefix(dot + 1);
  }
  *out = addr;
  return true;
}

}  // namespace

bool Ipv4Cidr::Overlaps(const Ipv4Cidr& other) const {
  int p = std::min(prefix, other.prefix);
  uint32_t mask = p == 0 ? 0 : ~uint32_t{0} << (32 - p);
  return (address & mask) == (other.address & mask);
}

std::string Ipv4Cidr::ToString() const { return fmt::format("{}/{}", FormatIpv4(address), prefix); }

std::string FormatIpv4(uint32_t a) {
  return fmt::format("{}.{}.{}.{}", a >> 24, (a >> 16) & 0xff, (a >> 8) & 0xff, a & 0xff);
}

Result<uint32_t> ParseIpv4Address(std::string_view text, std::string_view field) {
  uint32_t addr = 0;
  if (!ParseAddress(text, &addr))
    return InvalidArgument(
        fmt::format("{}: '{}' is not an IPv4 address such as 192.0.2.1", field, text));
  return addr;
}

Result<Ipv4Cidr> ParseIpv4Cidr(std::string_view text, std::string_view field) {
  if (text.find(':') != std::string_view::npos)
    return InvalidArgument(fmt::format(
        "{}: '{}' is IPv6; sandboxes have no IPv6 route in nat mode, so only IPv4 CIDRs apply",
        field, text));
  size_t slash = text.find('/');
  std::string_view addr_text = text.substr(0, slash);
  Ipv4Cidr cidr;
  if (!ParseAddress(addr_text, &cidr.address))
    return InvalidArgument(
        fmt::format("{}: '{}' is not an IPv4 CIDR such as 10.0.0.0/8 or 192.0.2.1", field, text));
  if (slash != std::string_view::npos) {
    if (!ParseSmallDecimal(text.substr(slash + 1), 32, &cidr.prefix))
      return InvalidArgument(
          fmt::format("{}: '{}' needs a prefix length from 0 to 32 after '/'", field, text));
  }
  if ((cidr.address & ~cidr.Mask()) != 0) {
    Ipv4Cidr network{cidr.address & cidr.Mask(), cidr.prefix};
    return InvalidArgument(fmt::format("{}: '{}' has host bits set; did you mean {}?", field, text,
                                       network.ToString()));
  }
  return cidr;
}

}  // namespace hutch::core
