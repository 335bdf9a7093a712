#include "cli/output.h"

#include <algorithm>
#include <charconv>
#include <chrono>
#include <cmath>
#include <sstream>

#include <fmt/format.h>

namespace hutch::cli {

namespace {

// Display width in code points: count every byte that does not continue a UTF-8 sequence.
size_t DisplayWidth(std::string_view s) {
  return static_cast<size_t>(
      std::count_if(s.begin(), s.end(), [](char c) { return (c & 0xC0) != 0x80; }));
}

void PrintRow(std::ostream& out, const std::vector<std::string>& row,
              const std::vector<size_t>& widths) {
  std::string line;
  for (size_t i = 0; i < widths.size(); ++i) {
    const std::string& cell = i < row.size() ? row[i] : std::string();
    line += cell;
    if (i + 1 < widths.size()) line.append(widths[i] - DisplayWidth(cell) + 3, ' ');
  }
  // Empty trailing cells would leave padding behind.
  while (!line.empty() && line.back() == ' ') line.pop_back();
  out << line << '\n';
}

void AppendPretty(std::string& out, const json::value& v, int indent) {
  auto newline = [&](int level) {
    out += '\n';
    out.append(static_cast<size_t>(level) * 2, ' ');
  };
  if (v.is_object()) {
    const auto& o = v.get_object();
    if (o.empty()) {
      out += "{}";
      return;
    }
    out += '{';
    bool first = true;
    for (const auto& kv : o) {
      if (!first) out += ',';
      first = false;
      newline(indent + 1);
      out += json::serialize(json::string(kv.key()));
      out += ": ";
      AppendPretty(out, kv.value(), indent + 1);
    }
    newline(indent);
    out += '}';
  } else if (v.is_array()) {
    const auto& a = v.get_array();
    if (a.empty()) {
      out += "[]";
      return;
    }
    out += '[';
    bool first = true;
    for (const auto& e : a) {
      if (!first) out += ',';
      first = false;
      newline(indent + 1);
      AppendPretty(out, e, indent + 1);
    }
    newline(indent);
    out += ']';
  } else if (v.is_double()) {
    // Boost.JSON writes 0.5 as "5E-1"; people read the shortest decimal that round-trips.
    out += fmt::format("{}", v.get_double());
  } else {
    out += json::serialize(v);
  }
}

std::string ToLower(std::string_view s) {
  std::string out(s);
  for (char& c : out)
    if (c >= 'A' && c <= 'Z') c = static_cast<char>(c - 'A' + 'a');
  return out;
}

}  // namespace

Table::Table(std::vector<std::string> header) : header_(std::move(header)) {}

void Table::AddRow(std::vector<std::string> row) { rows_.push_back(std::move(row)); }

void Table::Print(std::ostream& out) const {
  std::vector<size_t> widths(header_.size(), 0);
  auto widen = [&](const std::vector<std::string>& row) {
    for (size_t i = 0; i < row.size() && i < widths.size(); ++i)
      widths[i] = std::max(widths[i], DisplayWidth(row[i]));
  };
  widen(header_);
  for (const auto& row : rows_) widen(row);
  PrintRow(out, header_, widths);
  for (const auto& row : rows_) PrintRow(out, row, widths);
}

std::string Table::ToString() const {
  std::ostringstream out;
  Print(out);
  return out.str();
}

void PrintKeyValues(std::ostream& out,
                    const std::vector<std::pair<std::string, std::string>>& lines) {
  size_t width = 0;
  for (const auto& [key, value] : lines) width = std::max(width, DisplayWidth(key));
  for (const auto& [key, value] : lines) {
    std::string line = key + ":";
    if (!value.empty()) line += std::string(width - DisplayWidth(key) + 1, ' ') + value;
    out << line << '\n';
  }
}

std::string PrettyJson(const json::value& v) {
  std::string out;
  AppendPretty(out, v, 0);
  out += '\n';
  return out;
}

std::string FormatAge(int64_t seconds) {
  if (seconds < 0) seconds = 0;
  if (seconds < 60) return fmt::format("{}s", seconds);
  if (seconds < 3600) return fmt::format("{}m", seconds / 60);
  if (seconds < 86400) return fmt::format("{}h", seconds / 3600);
  return fmt::format("{}d", seconds / 86400);
}

std::string FormatAgeSince(TimePoint t, TimePoint now) {
  return FormatAge(std::chrono::duration_cast<std::chrono::seconds>(now - t).count());
}

std::string FormatMegabytes(int64_t mb) {
  constexpr int64_t kG = 1024, kT = 1024 * 1024;
  auto scaled = [](int64_t mb, int64_t unit, char suffix) {
    if (mb % unit == 0) return fmt::format("{}{}", mb / unit, suffix);
    std::string s = fmt::format("{:.1f}", static_cast<double>(mb) / static_cast<double>(unit));
    if (s.ends_with(".0")) s.resize(s.size() - 2);
    return s + suffix;
  };
  if (mb >= kT) return scaled(mb, kT, 'T');
  if (mb >= kG) return scaled(mb, kG, 'G');
  return fmt::format("{}M", mb);
}

std::string FormatBytes(int64_t bytes) {
  if (bytes < 1024) return fmt::format("{}B", bytes < 0 ? 0 : bytes);
  const char* units = "KMGTPE";
  double v = static_cast<double>(bytes);
  int u = -1;
  while (v >= 1024 && u < 5) {
    v /= 1024;
    ++u;
  }
  if (v < 10) {
    std::string s = fmt::format("{:.1f}", v);
    if (s.ends_with(".0")) s.resize(s.size() - 2);
    return s + units[u];
  }
  return fmt::format("{:.0f}{}", v, units[u]);
}

std::string FormatCpus(double cpus) {
  std::string s = fmt::format("{:.2f}", cpus);
  while (s.ends_with('0')) s.pop_back();
  if (s.ends_with('.')) s.pop_back();
  return s;
}

std::string FormatDuration(int64_t seconds) {
  if (seconds <= 0) return "0s";
  if (seconds % 86400 == 0) return fmt::format("{}d", seconds / 86400);
  if (seconds % 3600 == 0) return fmt::format("{}h", seconds / 3600);
  if (seconds % 60 == 0) return fmt::format("{}m", seconds / 60);
  return fmt::format("{}s", seconds);
}

std::string FormatRelative(TimePoint t, TimePoint now) {
  // Rounded, not truncated: a token made to last 1d shows "in 1d", not "in 23h", a moment later.
  int64_t seconds = std::chrono::round<std::chrono::seconds>(t - now).count();
  if (seconds > 0) return fmt::format("in {}", FormatAge(seconds));
  return fmt::format("{} ago", FormatAge(-seconds));
}

std::string TimeWithAge(TimePoint t, TimePoint now) {
  return fmt::format("{} ({})", FormatTime(t), FormatRelative(t, now));
}

std::string JsonString(const json::object& o, std::string_view key) {
  auto it = o.find(key);
  if (it == o.end() || it->value().is_null()) return "";
  if (it->value().is_string()) return std::string(it->value().get_string());
  if (it->value().is_double()) return fmt::format("{}", it->value().get_double());
  return json::serialize(it->value());
}

const json::object& JsonObject(const json::object& o, std::string_view key) {
  static const json::object kEmpty;
  auto it = o.find(key);
  if (it == o.end() || !it->value().is_object()) return kEmpty;
  return it->value().get_object();
}

const json::array& JsonArray(const json::object& o, std::string_view key) {
  static const json::array kEmpty;
  auto it = o.find(key);
  if (it == o.end() || !it->value().is_array()) return kEmpty;
  return it->value().get_array();
}

std::optional<TimePoint> JsonTime(const json::object& o, std::string_view key) {
  auto it = o.find(key);
  if (it == o.end() || !it->value().is_string()) return std::nullopt;
  return ParseTime(it->value().get_string());
}

std::string JsonStringList(const json::object& o, std::string_view key) {
  auto it = o.find(key);
  if (it == o.end() || !it->value().is_array()) return "";
  std::string out;
  for (const auto& v : it->value().get_array()) {
    if (!out.empty()) out += ", ";
    out += v.is_string() ? std::string(v.get_string()) : json::serialize(v);
  }
  return out;
}

std::string FormatQuantity(const json::value& v, QuotaUnit unit, std::string_view if_null) {
  if (v.is_null()) return std::string(if_null);
  if (!v.is_number()) return json::serialize(v);
  double d = v.to_number<double>();
  auto whole = static_cast<int64_t>(d);
  switch (unit) {
    case QuotaUnit::kCpus:
      return FormatCpus(d);
    case QuotaUnit::kMegabytes:
      return FormatMegabytes(whole);
    case QuotaUnit::kSeconds:
      return FormatDuration(whole);
    case QuotaUnit::kCount:
      break;
  }
  return fmt::format("{}", d);
}

std::string FormatQuotaSummary(const json::object& quota) {
  std::string out;
  for (const QuotaField& f : kQuotaFields) {
    auto it = quota.find(f.key);
    if (it == quota.end() || it->value().is_null()) continue;
    if (!out.empty()) out += ", ";
    out += fmt::format("{} {}", f.label, FormatQuantity(it->value(), f.unit));
  }
  return out;
}

Result<int64_t> ParseMegabytes(std::string_view text, std::string_view flag) {
  auto bad = [&] {
    return InvalidArgument(
        fmt::format("{}: '{}' is not a size such as 512M, 2G or 512 (megabytes)", flag, text));
  };
  size_t digits_end = 0;
  while (digits_end < text.size() &&
         ((text[digits_end] >= '0' && text[digits_end] <= '9') || text[digits_end] == '.'))
    ++digits_end;
  if (digits_end == 0) return bad();
  double number = 0;
  auto [ptr, ec] = std::from_chars(text.data(), text.data() + digits_end, number);
  if (ec != std::errc() || ptr != text.data() + digits_end) return bad();

  std::string unit = ToLower(text.substr(digits_end));
  // "2G", "2GB", "2Gi" and "2GiB" all mean 2048 MB: nobody sizing a sandbox means 2,000,000,000.
  if (unit.ends_with("ib")) {
    unit.resize(unit.size() - 2);
  } else if (unit.size() == 2 && (unit.back() == 'b' || unit.back() == 'i')) {
    unit.pop_back();
  }
  double mb_per_unit;
  if (unit.empty() || unit == "m") {
    mb_per_unit = 1;
  } else if (unit == "k") {
    mb_per_unit = 1.0 / 1024;
  } else if (unit == "g") {
    mb_per_unit = 1024;
  } else if (unit == "t") {
    mb_per_unit = 1024.0 * 1024;
  } else {
    return bad();
  }
  double mb = number * mb_per_unit;
  if (mb > static_cast<double>(int64_t{1} << 40)) return bad();
  double rounded = std::round(mb);
  if (rounded < 1 || std::fabs(mb - rounded) > 1e-6)
    return InvalidArgument(
        fmt::format("{}: '{}' is not a whole number of megabytes (at least 1M)", flag, text));
  return static_cast<int64_t>(rounded);
}

Result<int64_t> ParseSeconds(std::string_view text, std::string_view flag) {
  std::optional<int64_t> seconds = ParseDurationSeconds(text);
  if (!seconds)
    return InvalidArgument(
        fmt::format("{}: '{}' is not a duration such as 90s, 15m, 2h or 1d", flag, text));
  return *seconds;
}

Result<std::pair<std::string, std::string>> ParseKeyValue(std::string_view text,
                                                          std::string_view flag) {
  size_t eq = text.find('=');
  if (eq == std::string_view::npos || eq == 0)
    return InvalidArgument(fmt::format("{}: '{}' is not KEY=VALUE", flag, text));
  return std::pair<std::string, std::string>(text.substr(0, eq), text.substr(eq + 1));
}

}  // namespace hutch::cli
