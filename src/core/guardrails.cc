#include "core/guardrails.h"

#include <algorithm>
#include <cctype>
#include <utility>

#include <fmt/format.h>

#include "core/session_json.h"

namespace hutch::core {

namespace {

constexpr int64_t kMaxLimit = int64_t{1} << 40;

Result<int64_t> PositiveInt(const json::value& v, const std::string& field) {
  if (!v.is_int64() && !v.is_uint64())
    return InvalidArgument(fmt::format("{} must be a positive integer", field));
  int64_t n = v.is_int64() ? v.as_int64() : static_cast<int64_t>(v.as_uint64());
  if (n < 1 || n > kMaxLimit)
    return InvalidArgument(fmt::format("{} must be between 1 and {}", field, kMaxLimit));
  return n;
}

std::optional<int64_t> Min(std::optional<int64_t> a, std::optional<int64_t> b) {
  if (!a) return b;
  if (!b) return a;
  return std::min(*a, *b);
}

bool IsLocalChar(char c) {
  return std::isalnum(static_cast<unsigned char>(c)) || c == '.' || c == '_' || c == '%' ||
         c == '+' || c == '-';
}
bool IsDomainChar(char c) {
  return std::isalnum(static_cast<unsigned char>(c)) || c == '.' || c == '-';
}

// [begin, end) spans of e-mail addresses: local@domain.tld, the tld at least two letters.
std::vector<std::pair<size_t, size_t>> EmailSpans(std::string_view s) {
  std::vector<std::pair<size_t, size_t>> out;
  size_t from = 0;
  for (size_t at = s.find('@'); at != std::string_view::npos; at = s.find('@', at + 1)) {
    size_t b = at;
    while (b > from && IsLocalChar(s[b - 1])) --b;
    size_t e = at + 1;
    while (e < s.size() && IsDomainChar(s[e])) ++e;
    while (e > at + 1 && (s[e - 1] == '.' || s[e - 1] == '-')) --e;  // sentence punctuation
    if (b == at || e == at + 1) continue;
    std::string_view domain = s.substr(at + 1, e - at - 1);
    size_t dot = domain.rfind('.');
    if (dot == std::string_view::npos || dot == 0 || domain.size() - dot - 1 < 2) continue;
    std::string_view tld = domain.substr(dot + 1);
    if (!std::all_of(tld.begin(), tld.end(), [](char c) { return std::isalpha(c); })) continue;
    out.emplace_back(b, e);
    from = e;
    at = e - 1;
  }
  return out;
}

// [begin, end) spans of card numbers. A run of digits groups (separated by one space or hyphen)
// is searched for consecutive groups holding 13 to 19 digits that pass the Luhn check, the
// longest first; a card inside a longer unbroken run of digits is not taken for one.
std::vector<std::pair<size_t, size_t>> CardSpans(std::string_view s) {
  std::vector<std::pair<size_t, size_t>> out;
  size_t i = 0;
  while (i < s.size()) {
    if (!std::isdigit(static_cast<unsigned char>(s[i]))) {
      ++i;
      continue;
    }
    // One run: groups [begin, end) of digits.
    std::vector<std::pair<size_t, size_t>> groups;
    size_t j = i;
    while (true) {
      size_t g = j;
      while (j < s.size() && std::isdigit(static_cast<unsigned char>(s[j]))) ++j;
      groups.emplace_back(g, j);
      if (j + 1 < s.size() && (s[j] == ' ' || s[j] == '-') &&
          std::isdigit(static_cast<unsigned char>(s[j + 1]))) {
        ++j;
        continue;
      }
      break;
    }
    for (size_t a = 0; a < groups.size();) {
      bool found = false;
      for (size_t b = groups.size(); b-- > a;) {
        std::string digits;
        for (size_t k = a; k <= b; ++k)
          digits.append(s.substr(groups[k].first, groups[k].second - groups[k].first));
        if (digits.size() < 13 || digits.size() > 19 || !LuhnValid(digits)) continue;
        out.emplace_back(groups[a].first, groups[b].second);
        a = b + 1;
        found = true;
        break;
      }
      if (!found) ++a;
    }
    i = j;
  }
  return out;
}

std::string Replace(std::string_view s, std::vector<std::pair<size_t, size_t>> spans,
                    std::string_view with) {
  std::string out;
  size_t at = 0;
  for (const auto& [b, e] : spans) {
    out.append(s.substr(at, b - at));
    out.append(with);
    at = e;
  }
  out.append(s.substr(at));
  return out;
}

}  // namespace

bool LuhnValid(std::string_view digits) {
  int sum = 0;
  bool twice = false;
  for (size_t i = digits.size(); i-- > 0;) {
    int d = digits[i] - '0';
    if (d < 0 || d > 9) return false;
    if (twice) {
      d *= 2;
      if (d > 9) d -= 9;
    }
    sum += d;
    twice = !twice;
  }
  return !digits.empty() && sum % 10 == 0;
}

Result<Guardrails> ParseGuardrails(const json::value& v, std::string_view field) {
  if (!v.is_object()) return InvalidArgument(fmt::format("{} must be an object", field));
  Guardrails g;
  for (const auto& kv : v.as_object()) {
    const std::string key = std::string(kv.key());
    const std::string path = fmt::format("{}.{}", field, key);
    if (key == "max_messages_per_minute") {
      ASSIGN_OR_RETURN(g.max_messages_per_minute, PositiveInt(kv.value(), path));
    } else if (key == "max_message_bytes") {
      ASSIGN_OR_RETURN(g.max_message_bytes, PositiveInt(kv.value(), path));
    } else if (key == "max_run_seconds_per_message") {
      ASSIGN_OR_RETURN(g.max_run_seconds_per_message, PositiveInt(kv.value(), path));
    } else if (key == "network") {
      if (!kv.value().is_object()) return InvalidArgument(path + " must be an object");
      auto net = ParseNetworkSpec(kv.value().as_object());
      if (!net.ok()) return InvalidArgument(fmt::format("{}: {}", path, net.status().message()));
      g.network = *net;
    } else if (key == "redact") {
      if (!kv.value().is_array()) return InvalidArgument(path + " must be a list");
      const json::array& list = kv.value().as_array();
      for (size_t i = 0; i < list.size(); ++i) {
        if (!list[i].is_string() ||
            (list[i].as_string() != "email" && list[i].as_string() != "card_number"))
          return InvalidArgument(fmt::format(
              "{}[{}]: hutch redacts \"email\" and \"card_number\"; it cannot enforce another "
              "pattern",
              path, i));
        std::string name(list[i].as_string());
        if (std::find(g.redact.begin(), g.redact.end(), name) == g.redact.end())
          g.redact.push_back(name);
      }
    } else {
      return InvalidArgument(fmt::format(
          "{}: hutch cannot enforce this guardrail (it enforces {}), so it is refused rather "
          "than ignored",
          path, fmt::join(kGuardrailKeys, ", ")));
    }
  }
  return g;
}

Result<Guardrails> GuardrailsFromText(std::string_view text) {
  if (text.empty() || text == "{}") return Guardrails{};
  boost::system::error_code ec;
  json::value v = json::parse(text, ec);
  if (ec) return Internal("stored guardrails do not parse");
  return ParseGuardrails(v);
}

json::object ToJson(const Guardrails& g) {
  json::object o;
  if (g.max_messages_per_minute) o["max_messages_per_minute"] = *g.max_messages_per_minute;
  if (g.max_message_bytes) o["max_message_bytes"] = *g.max_message_bytes;
  if (g.max_run_seconds_per_message)
    o["max_run_seconds_per_message"] = *g.max_run_seconds_per_message;
  if (g.network) {
    json::object n{{"mode", g.network->mode}};
    if (g.network->mode == "nat") {
      json::array allow, deny;
      for (const auto& c : g.network->allow_out) allow.emplace_back(c);
      for (const auto& c : g.network->deny_out) deny.emplace_back(c);
      if (!allow.empty()) n["allow_out"] = std::move(allow);
      if (!deny.empty()) n["deny_out"] = std::move(deny);
    }
    o["network"] = std::move(n);
  }
  if (!g.redact.empty()) {
    json::array r;
    for (const auto& p : g.redact) r.emplace_back(p);
    o["redact"] = std::move(r);
  }
  return o;
}

Result<Guardrails> Strictest(const Guardrails& a, const Guardrails& b) {
  Guardrails g;
  g.max_messages_per_minute = Min(a.max_messages_per_minute, b.max_messages_per_minute);
  g.max_message_bytes = Min(a.max_message_bytes, b.max_message_bytes);
  g.max_run_seconds_per_message = Min(a.max_run_seconds_per_message, b.max_run_seconds_per_message);
  if (a.network && b.network && !(*a.network == *b.network))
    return InvalidArgument(
        "guardrails.network: the session's agents and guardrails ask for different networks");
  g.network = a.network ? a.network : b.network;
  g.redact = a.redact;
  for (const auto& p : b.redact)
    if (std::find(g.redact.begin(), g.redact.end(), p) == g.redact.end()) g.redact.push_back(p);
  return g;
}

std::string Redact(std::string_view text, const Guardrails& g) {
  std::string out(text);
  for (const std::string& p : g.redact) {
    if (p == "email") out = Replace(out, EmailSpans(out), "[redacted email]");
    if (p == "card_number") out = Replace(out, CardSpans(out), "[redacted card]");
  }
  return out;
}

void RedactJson(json::value& v, const Guardrails& g) {
  if (v.is_int64() || v.is_uint64()) {
    // A card number sent as a JSON number is a card number too.
    std::string digits =
        v.is_int64() ? std::to_string(v.as_int64()) : std::to_string(v.as_uint64());
    if (Redact(digits, g) != digits) v = "[redacted card]";
  } else if (v.is_string()) {
    v = Redact(v.as_string(), g);
  } else if (v.is_array()) {
    for (json::value& e : v.as_array()) RedactJson(e, g);
  } else if (v.is_object()) {
    for (auto& kv : v.as_object()) RedactJson(kv.value(), g);
  }
}

}  // namespace hutch::core
