// IPv4 addresses and CIDR blocks as sessions name them in network.allow_out / deny_out, parsed
// strictly: a typo in a firewall rule must be an error, never a different rule. Pure: no I/O.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

#include "common/status.h"

namespace hutch::core {

struct Ipv4Cidr {
  uint32_t address = 0;  // host byte order; the host bits are zero
  int prefix = 32;       // 0..32

  // The netmask in host byte order (prefix 0 → 0).
  uint32_t Mask() const { return prefix == 0 ? 0 : ~uint32_t{0} << (32 - prefix); }
  bool Contains(uint32_t addr) const { return (addr & Mask()) == address; }
  bool Overlaps(const Ipv4Cidr& other) const;
  // "10.0.0.0/8"; always with the prefix, also for /32.
  std::string ToString() const;
  bool operator==(const Ipv4Cidr&) const = default;
};

// "192.0.2.1": four decimal octets 0–255 without leading zeros (so "010" is never read as
// octal by one tool and as decimal by another), nothing else. invalid_argument naming `field`.
Result<uint32_t> ParseIpv4Address(std::string_view text, std::string_view field);

// "10.0.0.0/8", or a bare address meaning /32. Refused, with a message naming `field`: host
// bits set ("10.1.2.3/8" — did you mean 10.0.0.0/8?), IPv6 (sandboxes have no IPv6 route),
// prefixes outside 0–32, leading zeros, spaces, anything else.
Result<Ipv4Cidr> ParseIpv4Cidr(std::string_view text, std::string_view field);

// "192.0.2.1".
std::string FormatIpv4(uint32_t address);

}  // namespace hutch::core
