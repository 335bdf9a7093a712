// Wall-clock time as the API shows it: RFC 3339 UTC with millisecond precision.
#pragma once

#include <chrono>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace hutch {

using Clock = std::chrono::system_clock;
using TimePoint = std::chrono::time_point<Clock, std::chrono::milliseconds>;

TimePoint Now();
// "2026-11-22T00:27:41.123Z"
std::string FormatTime(TimePoint t);
// Accepts "YYYY-MM-DDTHH:MM:SS[.fff][Z|±HH:MM]"; nullopt if malformed.
std::optional<TimePoint> ParseTime(std::string_view s);

int64_t ToUnixMillis(TimePoint t);
TimePoint FromUnixMillis(int64_t ms);

// Monotonic milliseconds, for durations.
int64_t MonotonicMillis();

// "90s", "15m", "2h", "1d" or a bare number of seconds → seconds; nullopt if malformed.
std::optional<int64_t> ParseDurationSeconds(std::string_view s);

}  // namespace hutch
