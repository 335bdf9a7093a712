// One logging macro family. The level is checked before the message is formatted; PLOG_* append
// strerror(errno) saved at the call. Lines are JSON when stderr is not a terminal, so a log
// collector can read them; a session's lines carry its id in the `session` field.
//
//   LOG_INFO("listening on {}", addr);
//   LOG_SESSION_WARN(id, "agent did not answer: {}", st.ToString());
//   PLOG_ERROR("open {}", path);
#pragma once

#include <cerrno>
#include <string_view>

#include <fmt/format.h>

namespace hutch::log {

enum class Level { kDebug = 0, kInfo = 1, kWarn = 2, kError = 3, kOff = 4 };

// Process-wide settings; call once at start.
void SetLevel(Level level);
Level GetLevel();
// Parses "debug" | "info" | "warn" | "error" | "off".
bool ParseLevel(std::string_view name, Level* out);
// Forces JSON (true) or text (false) output; default: JSON unless stderr is a TTY.
void SetJson(bool json);

inline bool Enabled(Level level) { return level >= GetLevel(); }

void Write(Level level, std::string_view session, std::string_view message, int saved_errno);

}  // namespace hutch::log

#define HUTCH_LOG_IMPL(level, session, err, ...)                            \
  do {                                                                      \
    if (::hutch::log::Enabled(level))                                       \
      ::hutch::log::Write(level, session, ::fmt::format(__VA_ARGS__), err); \
  } while (0)

#define LOG_DEBUG(...) HUTCH_LOG_IMPL(::hutch::log::Level::kDebug, {}, 0, __VA_ARGS__)
#define LOG_INFO(...) HUTCH_LOG_IMPL(::hutch::log::Level::kInfo, {}, 0, __VA_ARGS__)
#define LOG_WARN(...) HUTCH_LOG_IMPL(::hutch::log::Level::kWarn, {}, 0, __VA_ARGS__)
#define LOG_ERROR(...) HUTCH_LOG_IMPL(::hutch::log::Level::kError, {}, 0, __VA_ARGS__)
#define LOG_SESSION_DEBUG(id, ...) HUTCH_LOG_IMPL(::hutch::log::Level::kDebug, id, 0, __VA_ARGS__)
#define LOG_SESSION_INFO(id, ...) HUTCH_LOG_IMPL(::hutch::log::Level::kInfo, id, 0, __VA_ARGS__)
#define LOG_SESSION_WARN(id, ...) HUTCH_LOG_IMPL(::hutch::log::Level::kWarn, id, 0, __VA_ARGS__)
#define LOG_SESSION_ERROR(id, ...) HUTCH_LOG_IMPL(::hutch::log::Level::kError, id, 0, __VA_ARGS__)
#define PLOG_WARN(...)                                                         \
  do {                                                                         \
    int _saved_errno = errno;                                                  \
    HUTCH_LOG_IMPL(::hutch::log::Level::kWarn, {}, _saved_errno, __VA_ARGS__); \
  } while (0)
#define PLOG_ERROR(...)                                                         \
  do {                                                                          \
    int _saved_errno = errno;                                                   \
    HUTCH_LOG_IMPL(::hutch::log::Level::kError, {}, _saved_errno, __VA_ARGS__); \
  } while (0)
