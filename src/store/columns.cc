#include "store/columns.h"

#include <charconv>

#include <fmt/format.h>

#include "common/ids.h"

namespace hutch::store {

using core::Session;
using core::SessionState;

std::string StringMapToJson(const std::map<std::string, std::string>& m) {
  return json::serialize(ToJsonObject(m));
}

json::array StringListToArray(const std::vector<std::string>& list) {
  json::array a;
  for (const auto& s : list) a.emplace_back(s);
  return a;
}

std::string StringListToJson(const std::vector<std::string>& list) {
  return json::serialize(StringListToArray(list));
}

Result<json::value> ParseColumnJson(std::string_view text, std::string_view what) {
  boost::system::error_code ec;
  json::value v = json::parse(text, ec);
  if (ec) return Internal(fmt::format("{}: stored JSON is malformed: {}", what, ec.message()));
  return v;
}

Result<std::map<std::string, std::string>> StringMapFromJson(std::string_view text,
                                                             std::string_view what) {
  ASSIGN_OR_RETURN(json::value v, ParseColumnJson(text, what));
  if (!v.is_object()) return Internal(fmt::format("{}: stored JSON is not an object", what));
  std::map<std::string, std::string> out;
  for (const auto& [k, val] : v.get_object()) {
    if (!val.is_string())
      return Internal(
          fmt::format("{}.{}: stored value is not a string", what, std::string_view(k)));
    out.emplace(k, val.get_string());
  }
  return out;
}

Result<std::vector<std::string>> StringListFromJson(const json::value& v, std::string_view what) {
  if (!v.is_array()) return Internal(fmt::format("{}: stored JSON is not an array", what));
  std::vector<std::string> out;
  for (const auto& item : v.get_array()) {
    if (!item.is_string()) return Internal(fmt::format("{}: stored item is not a string", what));
    out.emplace_back(item.get_string());
  }
  return out;
}

std::string NetworkToJson(const core::NetworkSpec& n) {
  json::object o;
  o["mode"] = n.mode;
  o["allow_out"] = StringListToArray(n.allow_out);
  o["deny_out"] = StringListToArray(n.deny_out);
  return json::serialize(o);
}

Result<core::NetworkSpec> NetworkFromJson(std::string_view text, std::string_view what) {
  ASSIGN_OR_RETURN(json::value v, ParseColumnJson(text, what));
  if (!v.is_object()) return Internal(fmt::format("{}: stored JSON is not an object", what));
  const json::object& o = v.get_object();
  core::NetworkSpec n;
  if (const auto* mode = o.if_contains("mode"); mode != nullptr && mode->is_string())
    n.mode = std::string(mode->get_string());
  if (const auto* a = o.if_contains("allow_out")) {
    ASSIGN_OR_RETURN(n.allow_out, StringListFromJson(*a, fmt::format("{}.allow_out", what)));
  }
  if (const auto* d = o.if_contains("deny_out")) {
    ASSIGN_OR_RETURN(n.deny_out, StringListFromJson(*d, fmt::format("{}.deny_out", what)));
  }
  return n;
}

Result<SessionState> StateFromColumn(const std::string& text, std::string_view what) {
  auto s = core::ParseSessionState(text);
  if (!s) return Internal(fmt::format("{}: unknown state '{}' in store", what, text));
  return *s;
}

Result<core::Reason> ReasonFromColumn(const std::string& text, std::string_view what) {
  auto r = core::ParseReason(text);
  if (!r) return Internal(fmt::format("{}: unknown reason '{}' in store", what, text));
  return *r;
}

std::optional<std::string> HexDecode(std::string_view hex) {
  if (hex.size() % 2 != 0) return std::nullopt;
  auto nibble = [](char c) -> int {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    return -1;
  };
  std::string out;
  out.reserve(hex.size() / 2);
  for (size_t i = 0; i < hex.size(); i += 2) {
    int hi = nibble(hex[i]), lo = nibble(hex[i + 1]);
    if (hi < 0 || lo < 0) return std::nullopt;
    out += static_cast<char>((hi << 4) | lo);
  }
  return out;
}

std::string EncodePageToken(const Session& last) {
  return HexEncode(fmt::format("{}:{}", ToUnixMillis(last.created_at), last.id));
}

Result<PageCursor> DecodePageToken(std::string_view token) {
  auto bad = [] {
    return InvalidArgument("page_token is malformed; pass next_page_token as given");
  };
  auto raw = HexDecode(token);
  if (!raw) return bad();
  size_t colon = raw->find(':');
  if (colon == std::string::npos) return bad();
  PageCursor c{};
  const char* first = raw->data();
  const char* last = raw->data() + colon;
  auto [ptr, ec] = std::from_chars(first, last, c.created_at_ms);
  if (ec != std::errc() || ptr != last || first == last) return bad();
  c.id = raw->substr(colon + 1);
  if (!IsId(c.id, "ses")) return bad();
  return c;
}

}  // namespace hutch::store
