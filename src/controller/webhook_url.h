// Where webhooks may be sent. A webhook URL is given by a user and fetched by the server, from
// inside the server's network: unchecked, it would let any user make the server POST to its
// cloud metadata service, its database or an admin port on localhost (server-side request
// forgery). So:
// - only http and https, no credentials in the URL;
// - never link-local (169.254.0.0/16, fe80::/10: cloud metadata lives there), unspecified,
//   multicast or broadcast addresses, nor the other known metadata addresses;
// - loopback, private (RFC 1918, CGNAT, IPv6 ULA) and other internal ranges only when the server
//   allows them (webhooks.allow_private; tests and single-machine setups).
// The address rule is applied to every address a host name resolves to, at every delivery (so a
// name cannot be re-pointed at an internal address after it was accepted), and to IP literals
// already when the webhook is created.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

#include "common/status.h"

namespace hutch::controller {

struct WebhookUrl {
  bool tls = false;         // https
  std::string host;         // lower case; an IPv6 literal without its brackets
  std::string port;         // "443" or "80" when the URL has none
  std::string target;       // path and query, "/" at least
  std::string host_header;  // what the Host header says ("example.com", "[::1]:8080")
  bool host_is_ip = false;  // host is an IPv4 or IPv6 literal
};

inline constexpr size_t kMaxWebhookUrlLength = 2048;

// Parses an absolute http(s) URL; invalid_argument naming what is wrong.
Result<WebhookUrl> ParseWebhookUrl(std::string_view url);

// OK when webhooks may be sent to the IP address `ip` (a literal: "10.0.0.1", "::1"); otherwise
// permission_denied saying which range it is in and, where it would help, that allow_private
// would admit it.
Status CheckWebhookAddress(std::string_view ip, bool allow_private);

// What can be checked before any name is resolved: the URL parses, an IP literal passes
// CheckWebhookAddress, and "localhost" (or a name under it) is treated as loopback. Every refusal
// is invalid_argument naming the url.
Result<WebhookUrl> CheckWebhookUrl(std::string_view url, bool allow_private);

}  // namespace hutch::controller
