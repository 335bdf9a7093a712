// Who may reach a session's port besides its owner: signed URLs (POST …/ports/{port}/url).
// A signature is HMAC-SHA256(server key, "<session id>\n<port>\n<expiry unix seconds>") in hex;
// the URL carries it as ?hutch_exp=…&hutch_sig=…, and the proxy accepts it for any path under
// that session's port until the expiry. The key lives in DATA_DIR/port-url.key (0600): deleting
// it and restarting the server revokes every signed URL.
//
// A browser that opened a signed URL gets the same signature as a cookie,
// hutch_port_access=<session id>.<port>.<expiry>.<signature>, scoped to that port's path (or
// host), so the page's own requests (scripts, images, fetches) need no signature of their own.
// The cookie carries everything to check it: the server keeps no state for it.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

#include "common/status.h"

namespace hutch::api {

inline constexpr std::string_view kSigParam = "hutch_sig";
inline constexpr std::string_view kExpParam = "hutch_exp";
inline constexpr std::string_view kAccessCookie = "hutch_port_access";

std::string SignPortAccess(std::string_view key, std::string_view session_id, uint16_t port,
                           int64_t expires_unix);

// Ok when `sig` signs (session_id, port, exp) and exp is after now; unauthenticated ("the signed
// URL expired at …", "the signed URL's signature is wrong") otherwise.
Status CheckPortAccess(std::string_view key, std::string_view session_id, uint16_t port,
                       std::string_view exp, std::string_view sig, int64_t now_unix);

// The Set-Cookie value that hands a signed URL's access to a browser: HttpOnly, SameSite=Lax,
// Path=`path`, Max-Age until `expires_unix`. Without Secure: the proxy adds it over TLS.
std::string PortAccessSetCookie(std::string_view key, std::string_view session_id, uint16_t port,
                                int64_t expires_unix, int64_t now_unix, std::string_view path);

// Ok when one of the hutch_port_access cookies in `cookie_header` (several ports' cookies may
// come together) opens `port` of `session_id` at `now_unix`; unauthenticated otherwise.
Status CheckPortAccessCookie(std::string_view key, std::string_view cookie_header,
                             std::string_view session_id, uint16_t port, int64_t now_unix);

// Whether `cookie_header` holds one of hutch's own cookies: hutch_port_access, or the console's
// hutch_console (auth.h), which a browser also sends to apps under path routing (same origin).
bool HasAccessCookie(std::string_view cookie_header);

// `cookie_header` ("a=1; hutch_port_access=…; b=2") without hutch's own cookies (above), which
// are not the app's: the console's would hand the app its user's credential. "" when nothing is
// left.
std::string StripAccessCookie(std::string_view cookie_header);

// The value of the first cookie `name` in a Cookie header, or "" when absent.
std::string CookieValue(std::string_view cookie_header, std::string_view name);

// Reads the key at `path`, or makes a new random one there (0600) when there is none.
Result<std::string> LoadOrCreatePortUrlKey(const std::string& path);

// `target` ("/a/b?x=1&hutch_sig=…&hutch_exp=…") without the signature parameters.
std::string StripAccessParams(std::string_view target);

}  // namespace hutch::api
