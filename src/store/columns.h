// How both stores write a session's structured fields into columns and read them back (JSON
// text for maps, lists and the network spec; names for states and reasons), and the opaque
// page tokens of session lists. One copy, so SQLite and PostgreSQL rows read alike.
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "common/json.h"
#include "common/status.h"
#include "core/session.h"

namespace hutch::store {

std::string StringMapToJson(const std::map<std::string, std::string>& m);
json::array StringListToArray(const std::vector<std::string>& list);
std::string StringListToJson(const std::vector<std::string>& list);
// `what` names the column in errors: stored JSON that does not parse is `internal`.
Result<json::value> ParseColumnJson(std::string_view text, std::string_view what);
Result<std::map<std::string, std::string>> StringMapFromJson(std::string_view text,
                                                             std::string_view what);
Result<std::vector<std::string>> StringListFromJson(const json::value& v, std::string_view what);
std::string NetworkToJson(const core::NetworkSpec& n);
Result<core::NetworkSpec> NetworkFromJson(std::string_view text, std::string_view what);
Result<core::SessionState> StateFromColumn(const std::string& text, std::string_view what);
Result<core::Reason> ReasonFromColumn(const std::string& text, std::string_view what);

// The bytes of lower-case hex text; nullopt when it is not that (the inverse of HexEncode).
std::optional<std::string> HexDecode(std::string_view hex);

// Page tokens: hex of "<created_at millis>:<id>", the last row of the previous page. Hex keeps
// them URL-safe; clients treat them as opaque.
std::string EncodePageToken(const core::Session& last);
struct PageCursor {
  int64_t created_at_ms;
  std::string id;
};
// invalid_argument for a token this server did not make.
Result<PageCursor> DecodePageToken(std::string_view token);

}  // namespace hutch::store
