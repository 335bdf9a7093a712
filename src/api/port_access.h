// Who may reach a session's port besides its owner: signed URLs (POST …/ports/{port}/url).
// A signature is HMAC-SHA256(server key, "<session id>\n<port>\n<expiry unix seconds>") in hex;
// the URL carries it as ?hutch_exp=…&hutch_sig=…, and the proxy accepts it for any path under
// that session's port until the expiry. The key lives in DATA_DIR/port-url.key (0600): deleting
// it and restarting the server revokes every signed URL.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

#include "common/status.h"

namespace hutch::api {

inline constexpr std::string_view kSigParam = "hutch_sig";
inline constexpr std::string_view kExpParam = "hutch_exp";

std::string SignPortAccess(std::string_view key, std::string_view session_id, uint16_t port,
                           int64_t expires_unix);

// Ok when `sig` signs (session_id, port, exp) and exp is after now; unauthenticated ("the signed
// URL expired at …", "the signed URL's signature is wrong") otherwise.
Status CheckPortAccess(std::string_view key, std::string_view session_id, uint16_t port,
                       std::string_view exp, std::string_view sig, int64_t now_unix);

// Reads the key at `path`, or makes a new random one there (0600) when there is none.
Result<std::string> LoadOrCreatePortUrlKey(const std::string& path);

// `target` ("/a/b?x=1&hutch_sig=…&hutch_exp=…") without the signature parameters.
std::string StripAccessParams(std::string_view target);

}  // namespace hutch::api
