#include "api/port_access.h"

#include <fcntl.h>
#include <openssl/crypto.h>
#include <unistd.h>

#include <cerrno>
#include <charconv>
#include <fstream>
#include <sstream>

#include <fmt/format.h>

#include "common/ids.h"
#include "common/time.h"
#include "common/unique_fd.h"
#include "controller/webhooks.h"

namespace hutch::api {

std::string SignPortAccess(std::string_view key, std::string_view session_id, uint16_t port,
                           int64_t expires_unix) {
  std::string message = fmt::format("{}\n{}\n{}", session_id, port, expires_unix);
  return controller::HmacSha256Hex(key, message);
}

Status CheckPortAccess(std::string_view key, std::string_view session_id, uint16_t port,
                       std::string_view exp, std::string_view sig, int64_t now_unix) {
  int64_t expires = 0;
  auto [ptr, ec] = std::from_chars(exp.data(), exp.data() + exp.size(), expires);
  if (key.empty() || ec != std::errc() || ptr != exp.data() + exp.size())
    return Unauthenticated("the signed URL is malformed");
  std::string want = SignPortAccess(key, session_id, port, expires);
  // Constant time: the comparison must not tell how much of a forged signature was right.
  if (sig.size() != want.size() || CRYPTO_memcmp(sig.data(), want.data(), want.size()) != 0)
    return Unauthenticated("the signed URL's signature is wrong");
  if (now_unix >= expires)
    return Unauthenticated(fmt::format("the signed URL expired {} s ago", now_unix - expires));
  return Status::Ok();
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
