// Session search (GET /v1/sessions?q=): shell-style globs over names and titles, and their
// translation to SQL LIKE so both stores filter before the page limit (docs/api.md, "Finding
// sessions"). No I/O here.
//
// A pattern's `*` matches any run of characters (also none), `?` exactly one character (one UTF-8
// code point), `\` makes the next character literal (a trailing `\` is itself literal); every other
// character matches itself, ASCII letters without regard to case. There are no `[…]` classes:
// `[` is literal. Unlike fnmatch, `*` and `?` match `/` and a leading `.` too.
//
// A session matches a query when its name matches the whole pattern, or its title contains a run
// that the pattern matches (the pattern with `*` on both ends): `q=web-*` finds the session
// named `web-1` and the one titled "the web-shop demo"; `q=demo` finds any title holding "demo".
#pragma once

#include <string>
#include <string_view>

namespace hutch::core {

// The longest query the API takes, in bytes.
inline constexpr size_t kMaxQueryBytes = 200;

// Whether `text` matches the whole of `pattern` (the rules above).
bool GlobMatch(std::string_view pattern, std::string_view text);

// Whether some run of `text` matches `pattern`: GlobMatch("*" + pattern + "*", text).
bool GlobContains(std::string_view pattern, std::string_view text);

// Whether a session with `name` and `title` matches query `q` (name: whole; title: contains).
bool SessionMatchesQuery(std::string_view q, std::string_view name, std::string_view title);

// `pattern` as the operand of `LIKE ? ESCAPE '\'`: `*` → `%`, `?` → `_`, literal `%`, `_` and `\`
// escaped with `\`, ASCII letters lowered (compare with the column's ASCII letters lowered too:
// SQLite's LIKE does that itself, PostgreSQL needs translate()). With `contains`, wrapped in `%`.
std::string GlobToLike(std::string_view pattern, bool contains = false);

}  // namespace hutch::core
