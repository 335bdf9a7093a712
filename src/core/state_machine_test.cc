#include "core/state_machine.h"

#include <gtest/gtest.h>

#include <set>
#include <utility>

namespace hutch::core {
namespace {

using S = SessionState;

const S kAll[] = {S::kScheduled,   S::kPending,    S::kProvisioning, S::kRunning,
                  S::kPaused,      S::kStopping,   S::kStopped,      S::kError,
                  S::kTerminating, S::kTerminated, S::kCancelled};

// DESIGN.md §3, written out independently of the implementation's table.
const std::set<std::pair<S, S>> kAllowed = {
    {S::kScheduled, S::kPending},      {S::kScheduled, S::kProvisioning},
    {S::kScheduled, S::kCancelled},    {S::kPending, S::kProvisioning},
    {S::kPending, S::kCancelled},      {S::kProvisioning, S::kRunning},
    {S::kProvisioning, S::kError},     {S::kProvisioning, S::kTerminating},
    {S::kRunning, S::kPaused},         {S::kRunning, S::kStopping},
    {S::kRunning, S::kTerminating},    {S::kRunning, S::kError},
    {S::kPaused, S::kRunning},         {S::kPaused, S::kStopping},
    {S::kPaused, S::kTerminating},     {S::kPaused, S::kError},
    {S::kStopping, S::kStopped},       {S::kStopping, S::kError},
    {S::kStopped, S::kProvisioning},   {S::kStopped, S::kTerminating},
    {S::kError, S::kProvisioning},     {S::kError, S::kTerminating},
    {S::kTerminating, S::kTerminated},
};

TEST(StateMachineTest, EveryPairIsAllowedExactlyWhenTheTableSaysSo) {
  int allowed = 0;
  for (S from : kAll) {
    for (S to : kAll) {
      bool expected = kAllowed.count({from, to}) > 0;
      EXPECT_EQ(CanTransition(from, to), expected) << ToString(from) << " -> " << ToString(to);
      allowed += expected;
    }
  }
  EXPECT_EQ(allowed, 23);
}

TEST(StateMachineTest, RefusedTransitionIsConflictAndLeavesSessionUnchanged) {
  for (S from : kAll) {
    for (S to : kAll) {
      if (kAllowed.count({from, to})) continue;
      Session s;
      s.id = "ses_test";
      s.state = from;
      s.reason = Reason::kTtl;
      auto r = Transition(s, to, Reason::kUser, "u1", Now());
      ASSERT_FALSE(r.ok());
      EXPECT_EQ(r.status().code(), Code::kConflict);
      EXPECT_EQ(s.state, from);
      EXPECT_EQ(s.reason, Reason::kTtl);
    }
  }
}

TEST(StateMachineTest, AllowedTransitionRecordsHistoryEntry) {
  Session s;
  s.id = "ses_test";
  s.state = S::kProvisioning;
  TimePoint at = FromUnixMillis(1000);
  auto r = Transition(s, S::kRunning, Reason::kUser, "u1", at);
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(r->session_id, "ses_test");
  EXPECT_EQ(r->from, S::kProvisioning);
  EXPECT_EQ(r->to, S::kRunning);
  EXPECT_EQ(r->reason, Reason::kUser);
  EXPECT_EQ(r->actor, "u1");
  EXPECT_EQ(r->at, at);
  EXPECT_EQ(s.state, S::kRunning);
  EXPECT_EQ(s.started_at, at);
}

TEST(StateMachineTest, TransitionsSetTheTimestampsTheyImply) {
  Session s;
  s.state = S::kRunning;
  ASSERT_TRUE(Transition(s, S::kPaused, Reason::kIdle, "system", FromUnixMillis(5)).ok());
  EXPECT_EQ(s.paused_at, FromUnixMillis(5));
  ASSERT_TRUE(Transition(s, S::kRunning, Reason::kUser, "u", FromUnixMillis(6)).ok());
  EXPECT_FALSE(s.paused_at);
  ASSERT_TRUE(Transition(s, S::kError, Reason::kError, "system", FromUnixMillis(7), "boom").ok());
  EXPECT_EQ(s.error, "boom");
  ASSERT_TRUE(Transition(s, S::kTerminating, Reason::kUser, "u", FromUnixMillis(8)).ok());
  ASSERT_TRUE(Transition(s, S::kTerminated, Reason::kUser, "u", FromUnixMillis(9)).ok());
  EXPECT_EQ(s.ended_at, FromUnixMillis(9));
  EXPECT_TRUE(IsFinal(s.state));
}

TEST(StateMachineTest, StateAndReasonNamesRoundTrip) {
  for (S s : kAll) EXPECT_EQ(ParseSessionState(ToString(s)), s);
  EXPECT_FALSE(ParseSessionState("bogus"));
  for (Reason r : {Reason::kUser, Reason::kTtl, Reason::kIdle, Reason::kSchedule, Reason::kQuota,
                   Reason::kError, Reason::kServerRestart, Reason::kWorkshop, Reason::kAdmin,
                   Reason::kCompleted, Reason::kDependency})
    EXPECT_EQ(ParseReason(ToString(r)), r);
  EXPECT_EQ(ToString(Reason::kCompleted), "completed");
  EXPECT_EQ(ToString(Reason::kDependency), "dependency");
  EXPECT_EQ(ToString(Reason::kServerRestart), "server_restart");
}

TEST(SessionTest, NamesAreDnsLabels) {
  EXPECT_TRUE(IsValidName("a"));
  EXPECT_TRUE(IsValidName("lab-01"));
  EXPECT_TRUE(IsValidName(std::string(63, 'a')));
  EXPECT_FALSE(IsValidName(""));
  EXPECT_FALSE(IsValidName(std::string(64, 'a')));
  EXPECT_FALSE(IsValidName("-lab"));
  EXPECT_FALSE(IsValidName("lab-"));
  EXPECT_FALSE(IsValidName("Lab"));
  EXPECT_FALSE(IsValidName("lab_01"));
  EXPECT_FALSE(IsValidName("lab.01"));
}

}  // namespace
}  // namespace hutch::core
