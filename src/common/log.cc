#include "common/log.h"

#include <unistd.h>

#include <atomic>
#include <cstdio>
#include <cstring>
#include <mutex>
#include <string>

#include "common/json.h"
#include "common/time.h"

namespace hutch::log {

namespace {
std::atomic<Level> g_level{Level::kInfo};
// -1: decide from isatty(2) on first use.
std::atomic<int> g_json{-1};
std::mutex g_write_mu;

std::string_view LevelName(Level level) {
  switch (level) {
    case Level::kDebug:
      return "debug";
    case Level::kInfo:
      return "info";
    case Level::kWarn:
      return "warn";
    case Level::kError:
      return "error";
    case Level::kOff:
      return "off";
  }
  return "info";
}
}  // namespace

void SetLevel(Level level) { g_level = level; }
Level GetLevel() { return g_level; }
void SetJson(bool json) { g_json = json ? 1 : 0; }

bool ParseLevel(std::string_view name, Level* out) {
  for (Level l : {Level::kDebug, Level::kInfo, Level::kWarn, Level::kError, Level::kOff}) {
    if (LevelName(l) == name) {
      *out = l;
      return true;
    }
  }
  return false;
}

void Write(Level level, std::string_view session, std::string_view message, int saved_errno) {
  int json = g_json;
  if (json < 0) {
    json = isatty(STDERR_FILENO) ? 0 : 1;
    g_json = json;
  }
  std::string msg(message);
  if (saved_errno != 0) msg += fmt::format(": {}", std::strerror(saved_errno));
  std::string line;
  if (json) {
    boost::json::object o;
    o["time"] = FormatTime(Now());
    o["level"] = LevelName(level);
    if (!session.empty()) o["session"] = session;
    o["msg"] = msg;
    line = boost::json::serialize(o);
  } else if (session.empty()) {
    line = fmt::format("{} {:5} {}", FormatTime(Now()), LevelName(level), msg);
  } else {
    line = fmt::format("{} {:5} [{}] {}", FormatTime(Now()), LevelName(level), session, msg);
  }
  line += '\n';
  std::lock_guard lock(g_write_mu);
  (void)!::write(STDERR_FILENO, line.data(), line.size());
}

}  // namespace hutch::log
