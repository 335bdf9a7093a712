// HMAC-SHA256 for what the server signs (webhook deliveries, signed port URLs, checkpoint and
// image manifests), and the constant-time comparison that checks such a signature.
#pragma once

#include <string>
#include <string_view>

namespace hutch {

// Lowercase hex of HMAC-SHA256(key, message).
std::string HmacSha256Hex(std::string_view key, std::string_view message);

// a == b in time that depends on the lengths only: a forged signature learns nothing from how
// long the check of it took.
bool ConstantTimeEquals(std::string_view a, std::string_view b);

}  // namespace hutch
