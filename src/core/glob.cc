#include "core/glob.h"

#include <algorithm>
#include <optional>
#include <vector>

namespace hutch::core {

namespace {

enum class Kind { kLiteral, kAnyOne, kAnyRun };

struct Token {
  Kind kind;
  std::string_view text;  // kLiteral: the character's bytes (one code point)
};

// Bytes in the UTF-8 sequence that starts with `lead`; 1 for a stray continuation or invalid
// byte, so a malformed string still advances (it compares byte for byte then).
size_t CodePointLength(unsigned char lead) {
  if (lead < 0xC0) return 1;
  if (lead < 0xE0) return 2;
  if (lead < 0xF0) return 3;
  if (lead < 0xF8) return 4;
  return 1;
}

std::string_view NextChar(std::string_view s, size_t at) {
  size_t n = CodePointLength(static_cast<unsigned char>(s[at]));
  return s.substr(at, std::min(n, s.size() - at));
}

char LowerAscii(char c) { return c >= 'A' && c <= 'Z' ? static_cast<char>(c - 'A' + 'a') : c; }

bool SameChar(std::string_view a, std::string_view b) {
  if (a.size() != b.size()) return false;
  for (size_t i = 0; i < a.size(); ++i)
    if (LowerAscii(a[i]) != LowerAscii(b[i])) return false;
  return true;
}

// Runs of `*` collapse into one: they match the same, and the matcher stays linear per star.
std::vector<Token> Tokenize(std::string_view pattern) {
  std::vector<Token> out;
  for (size_t i = 0; i < pattern.size();) {
    char c = pattern[i];
    if (c == '*') {
      if (out.empty() || out.back().kind != Kind::kAnyRun) out.push_back({Kind::kAnyRun, {}});
      ++i;
    } else if (c == '?') {
      out.push_back({Kind::kAnyOne, {}});
      ++i;
    } else {
      if (c == '\\' && i + 1 < pattern.size()) ++i;
      std::string_view ch = NextChar(pattern, i);
      out.push_back({Kind::kLiteral, ch});
      i += ch.size();
    }
  }
  return out;
}

// The classic greedy matcher with one backtrack point (the last `*`): O(pattern × text).
bool MatchTokens(const std::vector<Token>& tokens, std::string_view text) {
  size_t t = 0, at = 0;
  std::optional<size_t> star_t;
  size_t star_at = 0;
  while (at < text.size()) {
    std::string_view ch = NextChar(text, at);
    if (t < tokens.size() && tokens[t].kind == Kind::kAnyRun) {
      star_t = t++;
      star_at = at;
    } else if (t < tokens.size() &&
               (tokens[t].kind == Kind::kAnyOne || SameChar(tokens[t].text, ch))) {
      ++t;
      at += ch.size();
    } else if (star_t) {
      // Let the last `*` take one more character and retry from there.
      t = *star_t + 1;
      star_at += NextChar(text, star_at).size();
      at = star_at;
    } else {
      return false;
    }
  }
  while (t < tokens.size() && tokens[t].kind == Kind::kAnyRun) ++t;
  return t == tokens.size();
}

// The tokens with `*` on both ends (once).
std::vector<Token> Unanchored(std::vector<Token> tokens) {
  if (tokens.empty() || tokens.front().kind != Kind::kAnyRun)
    tokens.insert(tokens.begin(), {Kind::kAnyRun, {}});
  if (tokens.back().kind != Kind::kAnyRun) tokens.push_back({Kind::kAnyRun, {}});
  return tokens;
}

}  // namespace

bool GlobMatch(std::string_view pattern, std::string_view text) {
  return MatchTokens(Tokenize(pattern), text);
}

bool GlobContains(std::string_view pattern, std::string_view text) {
  return MatchTokens(Unanchored(Tokenize(pattern)), text);
}

bool SessionMatchesQuery(std::string_view q, std::string_view name, std::string_view title) {
  return GlobMatch(q, name) || GlobContains(q, title);
}

std::string GlobToLike(std::string_view pattern, bool contains) {
  std::vector<Token> tokens = Tokenize(pattern);
  if (contains) tokens = Unanchored(std::move(tokens));
  std::string out;
  for (const Token& tok : tokens) {
    switch (tok.kind) {
      case Kind::kAnyRun:
        out += '%';
        break;
      case Kind::kAnyOne:
        out += '_';
        break;
      case Kind::kLiteral:
        if (tok.text == "%" || tok.text == "_" || tok.text == "\\") out += '\\';
        for (char c : tok.text) out += LowerAscii(c);
        break;
    }
  }
  return out;
}

}  // namespace hutch::core
