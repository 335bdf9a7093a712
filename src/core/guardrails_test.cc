#include "core/guardrails.h"

#include <gtest/gtest.h>

namespace hutch::core {
namespace {

Guardrails Redacting() {
  Guardrails g;
  g.redact = {"email", "card_number"};
  return g;
}

TEST(GuardrailsTest, ParsesWhatHutchEnforcesAndRefusesTheRest) {
  auto g = ParseGuardrails(json::parse(
      R"({"max_messages_per_minute": 5, "max_message_bytes": 100, "max_run_seconds_per_message": 9,
          "network": {"mode": "nat", "allow_out": ["10.0.0.1/32"]}, "redact": ["email"]})"));
  ASSERT_TRUE(g.ok()) << g.status().ToString();
  EXPECT_EQ(g->max_messages_per_minute, 5);
  EXPECT_EQ(g->max_message_bytes, 100);
  EXPECT_EQ(g->max_run_seconds_per_message, 9);
  ASSERT_TRUE(g->network.has_value());
  EXPECT_EQ(g->network->mode, "nat");
  auto bad = ParseGuardrails(json::parse(R"({"toxicity": 0.2})"));
  ASSERT_FALSE(bad.ok());
  EXPECT_NE(bad.status().message().find("guardrails.toxicity: hutch cannot enforce"),
            std::string::npos)
      << bad.status().message();
  EXPECT_FALSE(ParseGuardrails(json::parse(R"({"redact": ["phone"]})")).ok());
  EXPECT_FALSE(ParseGuardrails(json::parse(R"({"max_message_bytes": 0})")).ok());
  EXPECT_FALSE(ParseGuardrails(json::parse(R"({"network": {"mode": "open"}})")).ok());
  EXPECT_TRUE(GuardrailsFromText("{}")->empty());
}

TEST(GuardrailsTest, StrictestTakesTheSmallerLimitAndRefusesTwoNetworks) {
  Guardrails a, b;
  a.max_messages_per_minute = 10;
  b.max_messages_per_minute = 3;
  b.max_message_bytes = 50;
  a.redact = {"email"};
  b.redact = {"card_number", "email"};
  auto g = Strictest(a, b);
  ASSERT_TRUE(g.ok());
  EXPECT_EQ(g->max_messages_per_minute, 3);
  EXPECT_EQ(g->max_message_bytes, 50);
  EXPECT_EQ(g->redact.size(), 2u);
  a.network = NetworkSpec{};
  b.network = NetworkSpec{"nat", {}, {}};
  EXPECT_FALSE(Strictest(a, b).ok());
}

TEST(GuardrailsTest, LuhnCheck) {
  EXPECT_TRUE(LuhnValid("4111111111111111"));
  EXPECT_TRUE(LuhnValid("79927398713"));
  EXPECT_FALSE(LuhnValid("4111111111111112"));
  EXPECT_FALSE(LuhnValid(""));
}

TEST(GuardrailsTest, RedactsEmailAddressesAndCardNumbersHoweverTheyAreWritten) {
  Guardrails g = Redacting();
  EXPECT_EQ(Redact("mail Alice.B+x@Example.co.uk, please.", g), "mail [redacted email], please.");
  EXPECT_EQ(Redact("card 4111 1111 1111 1111 ok", g), "card [redacted card] ok");
  EXPECT_EQ(Redact("card 4111-1111-1111-1111.", g), "card [redacted card].");
  EXPECT_EQ(Redact("4111111111111111", g), "[redacted card]");
  EXPECT_EQ(Redact("amex 3782 822463 10005", g), "amex [redacted card]");
  // A digit group in front does not hide it.
  EXPECT_EQ(Redact("ref 7 4111 1111 1111 1111", g), "ref 7 [redacted card]");
  // Not a card: fails Luhn, or too short; not an address: no domain.
  EXPECT_EQ(Redact("4111 1111 1111 1112", g), "4111 1111 1111 1112");
  EXPECT_EQ(Redact("call 555 0100", g), "call 555 0100");
  EXPECT_EQ(Redact("a@b and @home", g), "a@b and @home");
  // Only what is asked.
  Guardrails only_email;
  only_email.redact = {"email"};
  EXPECT_EQ(Redact("x@y.org 4111111111111111", only_email), "[redacted email] 4111111111111111");
}

TEST(GuardrailsTest, RedactsEveryStringOfAJsonValue) {
  json::value v = json::parse(
      R"({"a": ["bob@example.com", 4111111111111111], "b": {"c": "4111 1111 1111 1111"}})");
  RedactJson(v, Redacting());
  EXPECT_EQ(json::serialize(v),
            R"({"a":["[redacted email]","[redacted card]"],"b":{"c":"[redacted card]"}})");
}

}  // namespace
}  // namespace hutch::core
