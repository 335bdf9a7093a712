// Guardrails of sessions with agents (docs/agents.md, "Guardrails"): limits hutch enforces on a
// session's messages, its network and its agents' replies. Each one is enforced, never
// decorative: a key hutch cannot enforce is refused (invalid_argument naming it), never kept
// and ignored. Values and pure functions; no I/O.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "common/json.h"
#include "common/status.h"
#include "core/session.h"

namespace hutch::core {

struct Guardrails {
  // POST …/messages: at most this many a minute per session (429 past it).
  std::optional<int64_t> max_messages_per_minute;
  // POST …/messages: content at most this many bytes (413 past it).
  std::optional<int64_t> max_message_bytes;
  // The session's network: mode none, or nat with only allow_out reachable.
  std::optional<NetworkSpec> network;
  // An agent that holds a message longer than this without acknowledging it fails it: the
  // message is answered by hutch (role system) and agent_state goes to ERROR.
  std::optional<int64_t> max_run_seconds_per_message;
  // Patterns removed from agents' replies (content and metadata strings) before they are stored:
  // "email", "card_number".
  std::vector<std::string> redact;

  bool empty() const {
    return !max_messages_per_minute && !max_message_bytes && !network &&
           !max_run_seconds_per_message && redact.empty();
  }
};

// Where a session's agents carry the session's guardrails: the variable every agent process gets
// (so it knows the limits it runs under) and where hutch keeps them with the session's copy of
// each agent. A value the agent's own env gives is replaced.
inline constexpr std::string_view kGuardrailsEnv = "HUTCH_AGENT_GUARDRAILS";

// The names of the guardrails hutch enforces, for error messages.
inline constexpr std::string_view kGuardrailKeys[] = {"max_messages_per_minute",
                                                      "max_message_bytes", "network",
                                                      "max_run_seconds_per_message", "redact"};

// Parses a guardrails object. Errors name the field ("guardrails.redact[1]") and say why; an
// unknown key is refused as a guardrail hutch cannot enforce.
Result<Guardrails> ParseGuardrails(const json::value& v, std::string_view field = "guardrails");
// The same from stored JSON text ("" or "{}": none).
Result<Guardrails> GuardrailsFromText(std::string_view text);
json::object ToJson(const Guardrails& g);

// The stricter of two: the smaller limit, the union of redactions; two different networks are
// a conflict (invalid_argument).
Result<Guardrails> Strictest(const Guardrails& a, const Guardrails& b);

// `text` with every e-mail address replaced by "[redacted email]" and every card number (13 to
// 19 digits, single spaces or hyphens between them allowed, passing the Luhn check) by
// "[redacted card]", as `g.redact` asks.
std::string Redact(std::string_view text, const Guardrails& g);
// Every string in `v` (objects and arrays walked) redacted the same way.
void RedactJson(json::value& v, const Guardrails& g);

// The Luhn check of a string of digits.
bool LuhnValid(std::string_view digits);

}  // namespace hutch::core
