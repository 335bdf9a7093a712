// Object ids: a prefix, an underscore and 16 lowercase base32 characters (80 random bits),
// e.g. "ses_3k7q2m4x9bvp5n1c". Also the random bytes for tokens.
#pragma once

#include <string>
#include <string_view>

namespace hutch {

// Fills `n` bytes from getrandom(2); aborts if the kernel cannot give randomness.
std::string RandomBytes(size_t n);
std::string NewId(std::string_view prefix);
bool IsId(std::string_view s, std::string_view prefix);
// Lowercase RFC 4648 base32 without padding.
std::string Base32(std::string_view bytes);
std::string HexEncode(std::string_view bytes);

}  // namespace hutch
