#include "api/port_access.h"

#include "api/auth.h"

#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <charconv>
#include <fstream>
#include <sstream>

#include <fmt/format.h>

#include "common/hmac.h"
#include "common/ids.h"
#include "common/time.h"
#include "common/unique_fd.h"

namespace hutch::api {

std::string SignPortAccess(std::string_view key, std::string_view session_id, uint16_t port,
                           int64_t expires_unix) {
  std::string message = fmt::format("{}\n{}\n{}", session_id, port, expires_unix);
  return HmacSha256Hex(key, message);
}

Status CheckPortAccess(std::string_view key, std::string_view session_id, uint16_t port,
                       std::string_view exp, std::string_view sig, int64_t now_unix) {
  int64_t expires = 0;
  auto [ptr, ec] = std::from_chars(exp.data(), exp.data() + exp.size(), expires);
  if (key.empty() || ec != std::errc() || ptr != exp.data() + exp.size())
    return Unauthenticated("the signed URL is malformed");
  std::string want = SignPortAccess(key, session_id, port, expires);
  // Constant time: the comparison must not tell how much of a forged signature was right.
  if (!ConstantTimeEquals(sig, want)) return Unauthenticated("the signed URL's signature is wrong");
  if (now_unix >= expires)
    return Unauthenticated(fmt::format("the signed URL expired {} s ago", now_unix - expires));
  return Status::Ok();
}

namespace {

std::string_view TrimSpaces(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t')) s.remove_suffix(1);
  return s;
}

// Calls `each(name, value, pair)` for every "name=value" pair of a Cookie header.
template <typename F>
void ForEachCookie(std::string_view header, F&& each) {
  while (!header.empty()) {
    size_t semi = header.find(';');
    std::string_view pair = TrimSpaces(header.substr(0, semi));
    header = semi == std::string_view::npos ? std::string_view() : header.substr(semi + 1);
    if (pair.empty()) continue;
    size_t eq = pair.find('=');
    std::string_view name = TrimSpaces(pair.substr(0, eq));
    std::string_view value =
        eq == std::string_view::npos ? std::string_view() : TrimSpaces(pair.substr(eq + 1));
    if (value.size() >= 2 && value.front() == '"' && value.back() == '"')
      value = value.substr(1, value.size() - 2);
    each(name, value, pair);
  }
}

}  // namespace

std::string PortAccessSetCookie(std::string_view key, std::string_view session_id, uint16_t port,
                                int64_t expires_unix, int64_t now_unix, std::string_view path) {
  return fmt::format("{}={}.{}.{}.{}; Path={}; Max-Age={}; HttpOnly; SameSite=Lax", kAccessCookie,
                     session_id, port, expires_unix,
                     SignPortAccess(key, session_id, port, expires_unix), path,
                     std::max<int64_t>(0, expires_unix - now_unix));
}

Status CheckPortAccessCookie(std::string_view key, std::string_view cookie_header,
                             std::string_view session_id, uint16_t port, int64_t now_unix) {
  Status result = Unauthenticated("no hutch_port_access cookie");
  bool opened = false;
  std::string port_text = std::to_string(port);
  ForEachCookie(
      cookie_header, [&](std::string_view name, std::string_view value, std::string_view) {
        if (opened || name != kAccessCookie) return;
        // "<session id>.<port>.<expiry>.<signature>": ids, numbers and hex hold no '.'.
        std::string_view parts[4];
        for (int i = 0; i < 3; ++i) {
          size_t dot = value.find('.');
          if (dot == std::string_view::npos) {
            result = Unauthenticated("the hutch_port_access cookie is malformed");
            return;
          }
          parts[i] = value.substr(0, dot);
          value.remove_prefix(dot + 1);
        }
        parts[3] = value;
        // Another port's or session's cookie: not this one's, whatever its signature.
        if (parts[0] != session_id || parts[1] != port_text) {
          result = Unauthenticated("the hutch_port_access cookie is for another port");
          return;
        }
        Status st = CheckPortAccess(key, session_id, port, parts[2], parts[3], now_unix);
        if (st.ok()) {
          opened = true;
          return;
        }
        result = Unauthenticated(fmt::format("the hutch_port_access cookie: {}", st.message()));
      });
  return opened ? Status::Ok() : result;
}

namespace {
bool IsHutchCookie(std::string_view name) {
  return name == kAccessCookie || name == kConsoleCookie;
}
}  // namespace

bool HasAccessCookie(std::string_view cookie_header) {
  bool found = false;
  ForEachCookie(cookie_header, [&](std::string_view name, std::string_view, std::string_view) {
    if (IsHutchCookie(name)) found = true;
  });
  return found;
}

std::string CookieValue(std::string_view cookie_header, std::string_view wanted) {
  std::string found;
  bool seen = false;
  ForEachCookie(cookie_header,
                [&](std::string_view name, std::string_view value, std::string_view) {
                  if (seen || name != wanted) return;
                  seen = true;
                  found = std::string(value);
                });
  return found;
}

std::string StripAccessCookie(std::string_view cookie_header) {
  std::string kept;
  ForEachCookie(cookie_header, [&](std::string_view name, std::string_view, std::string_view pair) {
    if (IsHutchCookie(name)) return;
    if (!kept.empty()) kept += "; ";
    kept += pair;
  });
  return kept;
}

Result<std::string> LoadOrCreatePortUrlKey(const std::string& path) {
  {
    std::ifstream in(path);
    if (in) {
      std::stringstream ss;
      ss << in.rdbuf();
      std::string key = ss.str();
      while (!key.empty() && (key.back() == '\n' || key.back() == ' ')) key.pop_back();
      if (key.size() >= 32) return key;
      return Internal(fmt::format("{} holds no key (under 32 characters): remove it", path));
    }
  }
  std::string key = HexEncode(RandomBytes(32));
  UniqueFd fd(open(path.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600));
  if (!fd) return ErrnoError("create " + path, errno);
  std::string line = key + "\n";
  if (write(fd.get(), line.data(), line.size()) != static_cast<ssize_t>(line.size()) ||
      fsync(fd.get()) != 0)
    return ErrnoError("write " + path, errno);
  return key;
}

std::string StripAccessParams(std::string_view target) {
  size_t q = target.find('?');
  if (q == std::string_view::npos) return std::string(target);
  std::string out(target.substr(0, q));
  std::string_view query = target.substr(q + 1);
  std::string kept;
  while (!query.empty()) {
    size_t amp = query.find('&');
    std::string_view param = query.substr(0, amp);
    query = amp == std::string_view::npos ? std::string_view() : query.substr(amp + 1);
    std::string_view name = param.substr(0, param.find('='));
    if (name == kSigParam || name == kExpParam) continue;
    if (!kept.empty()) kept += '&';
    kept += param;
  }
  if (!kept.empty()) out += "?" + kept;
  return out;
}

}  // namespace hutch::api
