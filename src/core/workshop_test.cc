#include "core/workshop.h"

#include <gtest/gtest.h>

namespace hutch::core {
namespace {

using W = WorkshopState;

TEST(WorkshopStateTest, FollowsTheTableAndNothingFollowsAFinalState) {
  EXPECT_TRUE(CanTransition(W::kScheduled, W::kProvisioning));
  EXPECT_TRUE(CanTransition(W::kProvisioning, W::kActive));
  EXPECT_TRUE(CanTransition(W::kActive, W::kEnding));
  EXPECT_TRUE(CanTransition(W::kEnding, W::kCompleted));
  EXPECT_TRUE(CanTransition(W::kActive, W::kCancelled));
  EXPECT_FALSE(CanTransition(W::kEnding, W::kCancelled));
  EXPECT_FALSE(CanTransition(W::kActive, W::kProvisioning));
  for (W to :
       {W::kScheduled, W::kProvisioning, W::kActive, W::kEnding, W::kCompleted, W::kCancelled}) {
    EXPECT_FALSE(CanTransition(W::kCompleted, to));
    EXPECT_FALSE(CanTransition(W::kCancelled, to));
    EXPECT_EQ(ParseWorkshopState(ToString(to)), to);
  }
  Workshop w;
  w.id = "wks_x";
  w.state = W::kActive;
  Status refused = TransitionWorkshop(w, W::kScheduled, "user", Now());
  EXPECT_EQ(refused.code(), Code::kConflict);
  EXPECT_EQ(w.state, W::kActive);
  ASSERT_TRUE(TransitionWorkshop(w, W::kCancelled, "user", Now()).ok());
  EXPECT_TRUE(w.ended_at.has_value());
}

TEST(WorkshopRequestTest, NamesTheBadFieldAndComputesTheEnd) {
  TimePoint now = Now();
  auto ok = ParseWorkshopRequest(
      *ParseJsonObject(R"({"name":"k8s","template":"py","duration_seconds":3600,)"
                       R"("max_participants":30})"),
      now);
  ASSERT_TRUE(ok.ok()) << ok.status().ToString();
  EXPECT_EQ(ok->end_at - ok->start_at, std::chrono::seconds(3600));
  EXPECT_EQ(ok->on_end, "terminate");
  auto bad = ParseWorkshopRequest(
      *ParseJsonObject(R"({"name":"k8s","template":"py","duration_seconds":3600,)"
                       R"("max_participants":30,"on_end":"explode"})"),
      now);
  EXPECT_NE(bad.status().message().find("on_end"), std::string::npos);
  auto missing = ParseWorkshopRequest(*ParseJsonObject(R"({"name":"k8s","template":"py"})"), now);
  EXPECT_NE(missing.status().message().find("duration_seconds"), std::string::npos);
}

TEST(ParticipantsCsvTest, ReportsEveryBadLineByNumber) {
  CsvParticipants ok = ParseParticipantsCsv(
      "\xEF\xBB\xBF"
      "email,name\n"
      "ada@example.com,\"Lovelace, Ada\"\n"
      "\n"
      ",Grace Hopper\r\n");
  ASSERT_TRUE(ok.errors.empty());
  ASSERT_EQ(ok.participants.size(), 2u);
  EXPECT_EQ(ok.participants[0].name, "Lovelace, Ada");
  EXPECT_EQ(ok.participants[0].email, "ada@example.com");
  EXPECT_EQ(ok.participants[1].name, "Grace Hopper");
  EXPECT_EQ(ok.lines[1], 4);

  CsvParticipants bad = ParseParticipantsCsv(
      "name,email\n"
      "Ada,ada@example.com\n"
      ",nobody@example.com\n"
      "Bob,not-an-email\n"
      "\"Unclosed,x@y.z\n");
  ASSERT_EQ(bad.errors.size(), 3u);
  EXPECT_EQ(bad.errors[0].line, 3);
  EXPECT_EQ(bad.errors[1].line, 4);
  EXPECT_NE(bad.errors[1].message.find("not-an-email"), std::string::npos);
  EXPECT_EQ(bad.errors[2].line, 5);
  EXPECT_EQ(ParseParticipantsCsv("").errors.size(), 1u);
  EXPECT_EQ(ParseParticipantsCsv("email\nx@y.z\n").errors.size(), 1u);
}

TEST(JoinCodeTest, ParsesChecksDomainsAndNormalizesWhatPeopleType) {
  TimePoint now = Now();
  auto c = ParseJoinCodeRequest(
      *ParseJsonObject(R"({"slots":3,"expires_in_seconds":60,"email_domains":["@Example.com"]})"),
      now, 30);
  ASSERT_TRUE(c.ok()) << c.status().ToString();
  EXPECT_EQ(c->slots, 3);
  EXPECT_EQ(*c->expires_at, now + std::chrono::seconds(60));
  EXPECT_TRUE(EmailDomainAllowed(*c, "ada@EXAMPLE.com"));
  EXPECT_FALSE(EmailDomainAllowed(*c, "ada@example.org"));
  EXPECT_FALSE(EmailDomainAllowed(*c, "ada@evil-example.com"));
  auto one = ParseJoinCodeRequest(*ParseJsonObject(R"({"one_time":true})"), now, 30);
  ASSERT_TRUE(one.ok());
  EXPECT_EQ(one->slots, 1);
  EXPECT_FALSE(
      ParseJoinCodeRequest(*ParseJsonObject(R"({"one_time":true,"slots":2})"), now, 30).ok());
  std::string code = NewJoinCode();
  ASSERT_EQ(code.size(), 8u);
  std::string lower = FormatJoinCode(code);
  for (char& ch : lower) ch = static_cast<char>(std::tolower(static_cast<unsigned char>(ch)));
  EXPECT_EQ(NormalizeJoinCode(lower), code);
}

}  // namespace
}  // namespace hutch::core
