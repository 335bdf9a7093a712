#include "sandbox/mountinfo.h"

#include <charconv>

#include <fmt/format.h>

#include "sandbox/fs.h"

namespace hutch::sandbox {

namespace {

std::vector<std::string_view> SplitSpaces(std::string_view line) {
  std::vector<std::string_view> out;
  size_t i = 0;
  while (i < line.size()) {
    while (i < line.size() && line[i] == ' ') ++i;
    size_t j = i;
    while (j < line.size() && line[j] != ' ') ++j;
    if (j > i) out.push_back(line.substr(i, j - i));
    i = j;
  }
  return out;
}

bool ParseInt(std::string_view s, int* out) {
  auto [p, ec] = std::from_chars(s.data(), s.data() + s.size(), *out);
  return ec == std::errc() && p == s.data() + s.size();
}

}  // namespace

std::string UnescapeMountPath(std::string_view s) {
  std::string out;
  out.reserve(s.size());
  for (size_t i = 0; i < s.size(); ++i) {
    if (s[i] == '\\' && i + 3 < s.size() && s[i + 1] >= '0' && s[i + 1] <= '3' && s[i + 2] >= '0' &&
        s[i + 2] <= '7' && s[i + 3] >= '0' && s[i + 3] <= '7') {
      out.push_back(
          static_cast<char>((s[i + 1] - '0') * 64 + (s[i + 2] - '0') * 8 + (s[i + 3] - '0')));
      i += 3;
    } else {
      out.push_back(s[i]);
    }
  }
  return out;
}

Result<std::vector<MountInfoEntry>> ParseMountInfo(std::string_view text) {
  std::vector<MountInfoEntry> out;
  int line_no = 0;
  while (!text.empty()) {
    size_t nl = text.find('\n');
    std::string_view line = text.substr(0, nl);
    text = nl == std::string_view::npos ? std::string_view() : text.substr(nl + 1);
    ++line_no;
    if (line.empty()) continue;
    auto f = SplitSpaces(line);
    // Six fixed fields, zero or more optional fields, "-", then three more.
    size_t sep = 6;
    while (sep < f.size() && f[sep] != "-") ++sep;
    MountInfoEntry e;
    if (sep + 2 >= f.size() || !ParseInt(f[0], &e.mount_id) || !ParseInt(f[1], &e.parent_id)) {
      return InvalidArgument(fmt::format("mountinfo line {} is malformed: {}", line_no, line));
    }
    e.root = UnescapeMountPath(f[3]);
    e.mount_point = UnescapeMountPath(f[4]);
    e.mount_options = std::string(f[5]);
    e.fs_type = std::string(f[sep + 1]);
    e.source = UnescapeMountPath(f[sep + 2]);
    e.super_options = sep + 3 < f.size() ? std::string(f[sep + 3]) : std::string();
    out.push_back(std::move(e));
  }
  return out;
}

Result<std::vector<MountInfoEntry>> ReadSelfMountInfo() {
  ASSIGN_OR_RETURN(std::string text, ReadFileToString("/proc/self/mountinfo"));
  return ParseMountInfo(text);
}

}  // namespace hutch::sandbox
