#include "common/time.h"

#include <time.h>

#include <charconv>
#include <cstdio>

#include <fmt/format.h>

namespace hutch {

TimePoint Now() { return std::chrono::time_point_cast<std::chrono::milliseconds>(Clock::now()); }

int64_t ToUnixMillis(TimePoint t) { return t.time_since_epoch().count(); }
TimePoint FromUnixMillis(int64_t ms) { return TimePoint(std::chrono::milliseconds(ms)); }

std::string FormatTime(TimePoint t) {
  int64_t ms = ToUnixMillis(t);
  time_t secs = static_cast<time_t>(ms >= 0 ? ms / 1000 : (ms - 999) / 1000);
  int frac = static_cast<int>(ms - static_cast<int64_t>(secs) * 1000);
  struct tm tm {};
  gmtime_r(&secs, &tm);
  return fmt::format("{:04}-{:02}-{:02}T{:02}:{:02}:{:02}.{:03}Z", tm.tm_year + 1900, tm.tm_mon + 1,
                     tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec, frac);
}

namespace {
bool ParseInt(std::string_view s, size_t pos, size_t len, int* out) {
  if (pos + len > s.size()) return false;
  for (size_t i = pos; i < pos + len; ++i)
    if (s[i] < '0' || s[i] > '9') return false;
  auto r = std::from_chars(s.data() + pos, s.data() + pos + len, *out);
  return r.ec == std::errc();
}
}  // namespace

std::optional<TimePoint> ParseTime(std::string_view s) {
  struct tm tm {};
  int year, mon, day, hour, min, sec;
  if (s.size() < 20 || s[4] != '-' || s[7] != '-' || (s[10] != 'T' && s[10] != 't') ||
      s[13] != ':' || s[16] != ':')
    return std::nullopt;
  if (!ParseInt(s, 0, 4, &year) || !ParseInt(s, 5, 2, &mon) || !ParseInt(s, 8, 2, &day) ||
      !ParseInt(s, 11, 2, &hour) || !ParseInt(s, 14, 2, &min) || !ParseInt(s, 17, 2, &sec))
    return std::nullopt;
  if (mon < 1 || mon > 12 || day < 1 || day > 31 || hour > 23 || min > 59 || sec > 60)
    return std::nullopt;
  size_t pos = 19;
  int millis = 0;
  if (pos < s.size() && s[pos] == '.') {
    ++pos;
    int digits = 0;
    while (pos < s.size() && s[pos] >= '0' && s[pos] <= '9') {
      if (digits < 3) millis = millis * 10 + (s[pos] - '0');
      ++digits;
      ++pos;
    }
    if (digits == 0) return std::nullopt;
    for (int d = digits; d < 3; ++d) millis *= 10;
  }
  int offset_min = 0;
  if (pos < s.size() && (s[pos] == 'Z' || s[pos] == 'z')) {
    ++pos;
  } else if (pos < s.size() && (s[pos] == '+' || s[pos] == '-')) {
    int oh, om;
    if (pos + 6 != s.size() || s[pos + 3] != ':' || !ParseInt(s, pos + 1, 2, &oh) ||
        !ParseInt(s, pos + 4, 2, &om))
      return std::nullopt;
    offset_min = (oh * 60 + om) * (s[pos] == '-' ? -1 : 1);
    pos += 6;
  } else {
    return std::nullopt;
  }
  if (pos != s.size()) return std::nullopt;
  tm.tm_year = year - 1900;
  tm.tm_mon = mon - 1;
  tm.tm_mday = day;
  tm.tm_hour = hour;
  tm.tm_min = min;
  tm.tm_sec = sec;
  time_t secs = timegm(&tm);
  int64_t ms = static_cast<int64_t>(secs) * 1000 + millis - int64_t{offset_min} * 60 * 1000;
  return FromUnixMillis(ms);
}

int64_t MonotonicMillis() {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return int64_t{ts.tv_sec} * 1000 + ts.tv_nsec / 1000000;
}

std::optional<int64_t> ParseDurationSeconds(std::string_view s) {
  if (s.empty()) return std::nullopt;
  int64_t mult = 1;
  char last = s.back();
  if (last == 's' || last == 'm' || last == 'h' || last == 'd') {
    mult = last == 's' ? 1 : last == 'm' ? 60 : last == 'h' ? 3600 : 86400;
    s.remove_suffix(1);
  }
  if (s.empty()) return std::nullopt;
  int64_t v = 0;
  auto r = std::from_chars(s.data(), s.data() + s.size(), v);
  if (r.ec != std::errc() || r.ptr != s.data() + s.size() || v < 0) return std::nullopt;
  if (v > INT64_MAX / mult) return std::nullopt;
  return v * mult;
}

}  // namespace hutch
