// What the CLI shows and how it reads what people type: tables, indented JSON, human sizes and
// durations. Pure functions, so the commands stay thin and the formats are tested in one place.
#pragma once

#include <cstdint>
#include <optional>
#include <ostream>
#include <string>
#include <string_view>
#include <vector>

#include "common/json.h"
#include "common/status.h"
#include "common/time.h"

namespace hutch::cli {

// Columns separated by three spaces and padded to the widest cell (counted in UTF-8 code points),
// the header first; no trailing spaces. Rows shorter than the header are padded with "".
class Table {
 public:
  explicit Table(std::vector<std::string> header);
  void AddRow(std::vector<std::string> row);
  size_t rows() const { return rows_.size(); }
  void Print(std::ostream& out) const;
  std::string ToString() const;

 private:
  std::vector<std::string> header_;
  std::vector<std::vector<std::string>> rows_;
};

// `key: value` lines with the values aligned.
void PrintKeyValues(std::ostream& out,
                    const std::vector<std::pair<std::string, std::string>>& lines);

// JSON indented by two spaces, with a final newline (what `-o json` prints).
std::string PrettyJson(const json::value& v);

// Seconds as the largest whole unit: 3s, 5m, 2h, 4d. Negative counts as 0s.
std::string FormatAge(int64_t seconds);
// How long ago `t` was, relative to `now` ("5m").
std::string FormatAgeSince(TimePoint t, TimePoint now);
// Megabytes as people write them: 512M, 2G, 1.5G, 1T.
std::string FormatMegabytes(int64_t mb);
// Bytes in binary units as people read them: 0B, 900B, 1.5K, 68M, 1.2G (one decimal below 10).
std::string FormatBytes(int64_t bytes);
// A CPU count without trailing zeros: 1, 0.5, 2.25.
std::string FormatCpus(double cpus);

// Seconds exactly, in the largest unit that divides them: 90s, 90m, 8h, 30d; 0 is 0s.
std::string FormatDuration(int64_t seconds);
// How far `t` is from `now`: "5m ago", "in 2h".
std::string FormatRelative(TimePoint t, TimePoint now);
// "2026-11-22T00:27:41.123Z (5m ago)" or "… (in 12m)".
std::string TimeWithAge(TimePoint t, TimePoint now);

// Reading the server's JSON for tables: a field that is absent, null or of another type gives
// the empty value, so a newer server's additions and omissions do not break the table.
// A string as it is; other values (numbers, booleans) as JSON; absent or null as "".
std::string JsonString(const json::object& o, std::string_view key);
// The object at `key`, or an empty one.
const json::object& JsonObject(const json::object& o, std::string_view key);
// The array at `key`, or an empty one.
const json::array& JsonArray(const json::object& o, std::string_view key);
// The time at `key` (RFC 3339), or nullopt.
std::optional<TimePoint> JsonTime(const json::object& o, std::string_view key);
// The strings of the array at `key`, joined by ", ".
std::string JsonStringList(const json::object& o, std::string_view key);

// A quota limit or usage as people read it: a count (5), cores (1.5), a size (4G) or a duration
// (8h); null as `if_null`.
enum class QuotaUnit { kCount, kCpus, kMegabytes, kSeconds };
std::string FormatQuantity(const json::value& v, QuotaUnit unit, std::string_view if_null = "-");

// The API's quota fields (Quota in openapi.yaml) in the order they are shown, with what the CLI
// calls them: the label in tables, the flag of `hutch user create/set`, and the field of /v1/me's
// usage that counts against the limit ("" for none).
struct QuotaField {
  std::string_view key;
  std::string_view label;
  std::string_view flag;
  QuotaUnit unit;
  std::string_view usage_key;
};
inline constexpr QuotaField kQuotaFields[] = {
    {"max_sessions", "sessions", "--max-sessions", QuotaUnit::kCount, "sessions"},
    {"max_cpus", "cpus", "--max-cpus", QuotaUnit::kCpus, "cpus"},
    {"max_memory_mb", "memory", "--max-memory", QuotaUnit::kMegabytes, "memory_mb"},
    {"max_disk_mb", "disk", "--max-disk", QuotaUnit::kMegabytes, "disk_mb"},
    {"max_ttl_seconds", "ttl", "--max-ttl", QuotaUnit::kSeconds, ""},
};
// The limits a quota object sets, "sessions 5, memory 4G"; "" when it sets none.
std::string FormatQuotaSummary(const json::object& quota);

// "512M", "2G", "1.5G", "1T", "512Mi", "2GB" (case-insensitive) or a bare number of megabytes;
// invalid_argument naming `flag` when malformed or not a whole, positive number of megabytes.
Result<int64_t> ParseMegabytes(std::string_view text, std::string_view flag);
// "90s", "15m", "2h", "1d" or bare seconds; invalid_argument naming `flag` when malformed.
Result<int64_t> ParseSeconds(std::string_view text, std::string_view flag);

// "K=V" → {K, V}; invalid_argument naming `flag` when there is no '=' or the key is empty.
Result<std::pair<std::string, std::string>> ParseKeyValue(std::string_view text,
                                                          std::string_view flag);

}  // namespace hutch::cli
