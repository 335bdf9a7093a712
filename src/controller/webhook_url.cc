#include "controller/webhook_url.h"

#include <arpa/inet.h>

#include <array>
#include <cstring>

#include <fmt/format.h>

namespace hutch::controller {

namespace {

std::string Lower(std::string_view s) {
  std::string out(s);
  for (char& c : out)
    if (c >= 'A' && c <= 'Z') c = static_cast<char>(c - 'A' + 'a');
  return out;
}

bool IsHostNameChar(char c) {
  return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' || c == '.' || c == '_';
}

// An address range: the first `bits` bits of `prefix`.
template <size_t N>
struct Range {
  std::array<uint8_t, N> prefix;
  int bits;
  bool always;  // refused even with allow_private
  std::string_view what;
};

template <size_t N>
bool InRange(const uint8_t* addr, const Range<N>& r) {
  int full = r.bits / 8, rest = r.bits % 8;
  if (std::memcmp(addr, r.prefix.data(), static_cast<size_t>(full)) != 0) return false;
  if (rest == 0) return true;
  uint8_t mask = static_cast<uint8_t>(0xff << (8 - rest));
  return (addr[full] & mask) == (r.prefix[static_cast<size_t>(full)] & mask);
}

// clang-format off
const Range<4> kV4Ranges[] = {
    {{169, 254, 0, 0}, 16, true, "link-local (cloud metadata services live there)"},
    {{100, 100, 100, 200}, 32, true, "a cloud metadata address"},
    {{0, 0, 0, 0}, 8, true, "the unspecified network 0.0.0.0/8"},
    {{224, 0, 0, 0}, 4, true, "multicast"},
    {{240, 0, 0, 0}, 4, true, "reserved or broadcast"},
    {{127, 0, 0, 0}, 8, false, "loopback"},
    {{10, 0, 0, 0}, 8, false, "private (RFC 1918)"},
    {{172, 16, 0, 0}, 12, false, "private (RFC 1918)"},
    {{192, 168, 0, 0}, 16, false, "private (RFC 1918)"},
    {{100, 64, 0, 0}, 10, false, "shared address space (RFC 6598)"},
    {{192, 0, 0, 0}, 24, false, "IETF protocol assignments"},
    {{198, 18, 0, 0}, 15, false, "benchmarking (RFC 2544)"},
};
const Range<16> kV6Ranges[] = {
    {{0xfe, 0x80}, 10, true, "link-local"},
    {{0xfd, 0x00, 0x0e, 0xc2, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x02, 0x54}, 128, true,
     "a cloud metadata address"},
    {{}, 128, true, "the unspecified address"},
    {{0xff}, 8, true, "multicast"},
    {{0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1}, 128, false, "loopback"},
    {{0xfc}, 7, false, "unique local (private)"},
    {{0xfe, 0xc0}, 10, false, "site-local (private)"},
    {{0x01, 0x00, 0, 0, 0, 0, 0, 0}, 64, false, "discard-only (RFC 6666)"},
};
// clang-format on

Status Refuse(std::string_view ip, std::string_view what, bool always) {
  if (always)
    return PermissionDenied(
        fmt::format("address {} is {}: webhooks are never sent there", ip, what));
  return PermissionDenied(
      fmt::format("address {} is {}: webhooks are not sent there unless the server sets "
                  "webhooks.allow_private",
                  ip, what));
}

Status CheckV4(const uint8_t* a, std::string_view ip, bool allow_private) {
  for (const auto& r : kV4Ranges) {
    if (!InRange(a, r)) continue;
    if (r.always || !allow_private) return Refuse(ip, r.what, r.always);
    return Status::Ok();
  }
  return Status::Ok();
}

}  // namespace

Result<WebhookUrl> ParseWebhookUrl(std::string_view url) {
  auto bad = [&](std::string_view why) {
    return InvalidArgument(fmt::format("url '{}' {}", url, why));
  };
  if (url.size() > kMaxWebhookUrlLength)
    return InvalidArgument(fmt::format("url is longer than {} characters", kMaxWebhookUrlLength));
  for (char c : url)
    if (static_cast<unsigned char>(c) <= 0x20 || c == 0x7f)
      return bad("contains a space or a control character");
  WebhookUrl u;
  size_t scheme_end = url.find("://");
  if (scheme_end == std::string_view::npos) return bad("must start with http:// or https://");
  std::string scheme = Lower(url.substr(0, scheme_end));
  if (scheme == "https") {
    u.tls = true;
  } else if (scheme != "http") {
    return bad("must start with http:// or https://");
  }
  std::string_view rest = url.substr(scheme_end + 3);
  size_t auth_end = rest.find_first_of("/?#");
  std::string_view authority = rest.substr(0, auth_end);
  std::string_view tail = auth_end == std::string_view::npos ? "" : rest.substr(auth_end);
  if (size_t hash = tail.find('#'); hash != std::string_view::npos) tail = tail.substr(0, hash);
  if (authority.find('@') != std::string_view::npos)
    return bad("must not carry credentials (user@host); authenticate with the signature");
  std::string_view host, port;
  if (authority.starts_with('[')) {
    size_t close = authority.find(']');
    if (close == std::string_view::npos) return bad("has an unclosed '[' in its host");
    host = authority.substr(1, close - 1);
    std::string_view after = authority.substr(close + 1);
    if (!after.empty()) {
      if (after.front() != ':') return bad("has something after its IPv6 address");
      port = after.substr(1);
    }
    in6_addr a6{};
    if (inet_pton(AF_INET6, std::string(host).c_str(), &a6) != 1)
      return bad("has a malformed IPv6 address");
    u.host_is_ip = true;
  } else {
    size_t colon = authority.rfind(':');
    host = authority.substr(0, colon);
    if (colon != std::string_view::npos) port = authority.substr(colon + 1);
    if (host.find(':') != std::string_view::npos)
      return bad("must write an IPv6 address in brackets");
  }
  if (host.empty()) return bad("has no host");
  u.host = Lower(host);
  if (!u.host_is_ip) {
    for (char c : u.host)
      if (!IsHostNameChar(c)) return bad("has a character a host name cannot have");
    in_addr a4{};
    u.host_is_ip = inet_pton(AF_INET, u.host.c_str(), &a4) == 1;
  }
  if (!port.empty()) {
    int p = 0;
    for (char c : port) {
      if (c < '0' || c > '9' || p > 65535) return bad("has a port that is not 1 to 65535");
      p = p * 10 + (c - '0');
    }
    if (p < 1 || p > 65535) return bad("has a port that is not 1 to 65535");
    u.port = std::to_string(p);
  } else if (authority.ends_with(':')) {
    return bad("has an empty port");
  }
  const std::string default_port = u.tls ? "443" : "80";
  if (u.port.empty()) u.port = default_port;
  std::string bracketed = u.host.find(':') != std::string::npos ? "[" + u.host + "]" : u.host;
  u.host_header = u.port == default_port ? bracketed : bracketed + ":" + u.port;
  u.target = tail.empty() || tail.front() == '?' ? "/" + std::string(tail) : std::string(tail);
  return u;
}

Status CheckWebhookAddress(std::string_view ip, bool allow_private) {
  const std::string text(ip);
  in_addr a4{};
  if (inet_pton(AF_INET, text.c_str(), &a4) == 1)
    return CheckV4(reinterpret_cast<const uint8_t*>(&a4), ip, allow_private);
  in6_addr a6{};
  if (inet_pton(AF_INET6, text.c_str(), &a6) != 1)
    return InvalidArgument(fmt::format("'{}' is not an IP address", ip));
  const uint8_t* b = a6.s6_addr;
  // IPv4-mapped (::ffff:a.b.c.d) and IPv4-compatible (::a.b.c.d) addresses reach the IPv4
  // address they embed; NAT64 (64:ff9b::/96) usually does too.
  static const uint8_t kMapped[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};
  static const uint8_t kNat64[12] = {0, 0x64, 0xff, 0x9b, 0, 0, 0, 0, 0, 0, 0, 0};
  static const uint8_t kZero[12] = {};
  if (std::memcmp(b, kMapped, 12) == 0 || std::memcmp(b, kNat64, 12) == 0 ||
      (std::memcmp(b, kZero, 12) == 0 && (b[12] | b[13]) != 0))
    return CheckV4(b + 12, ip, allow_private);
  for (const auto& r : kV6Ranges) {
    if (!InRange(b, r)) continue;
    if (r.always || !allow_private) return Refuse(ip, r.what, r.always);
    return Status::Ok();
  }
  return Status::Ok();
}

Result<WebhookUrl> CheckWebhookUrl(std::string_view url, bool allow_private) {
  ASSIGN_OR_RETURN(WebhookUrl u, ParseWebhookUrl(url));
  if (u.host_is_ip) {
    Status st = CheckWebhookAddress(u.host, allow_private);
    if (!st.ok()) return InvalidArgument(fmt::format("url '{}' is refused: {}", url, st.message()));
  } else if (!allow_private &&
             (u.host == "localhost" || u.host.ends_with(".localhost") || u.host == "localhost.")) {
    return InvalidArgument(fmt::format(
        "url '{}' is refused: {} is loopback: webhooks are not sent there unless the server "
        "sets webhooks.allow_private",
        url, u.host));
  }
  return u;
}

}  // namespace hutch::controller
