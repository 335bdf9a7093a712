#include "files/entry_json.h"

#include <ctime>

#include <fmt/format.h>

namespace hutch::files {

namespace {

std::string FormatMtime(int64_t ns) {
  time_t secs = static_cast<time_t>(ns / 1000000000);
  long frac = static_cast<long>(ns % 1000000000);
  if (frac < 0) {
    frac += 1000000000;
    secs -= 1;
  }
  struct tm tm;
  gmtime_r(&secs, &tm);
  return fmt::format("{:04}-{:02}-{:02}T{:02}:{:02}:{:02}.{:09}Z", tm.tm_year + 1900, tm.tm_mon + 1,
                     tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec, frac);
}

}  // namespace

json::object ToJson(const Entry& e) {
  json::object o;
  o["name"] = e.name;
  o["path"] = e.path;
  o["type"] = ToString(e.type);
  o["size"] = e.size;
  o["mode"] = fmt::format("{:04o}", e.mode);
  o["uid"] = e.uid;
  o["gid"] = e.gid;
  o["mtime"] = FormatMtime(e.mtime_ns);
  if (e.type == FileType::kSymlink) o["target"] = e.target;
  return o;
}

}  // namespace hutch::files
