#include "core/event.h"

#include <gtest/gtest.h>

#include <set>

#include "common/json.h"
#include "core/state_machine.h"

namespace hutch::core {
namespace {

using S = SessionState;

TEST(EventTest, FirstEntryIsCreatedWhateverTheInitialState) {
  for (S s : {S::kPending, S::kScheduled})
    EXPECT_EQ(EventTypeForTransition(std::nullopt, s), "session.created");
}

TEST(EventTest, RunningIsReadyAfterProvisioningAndResumedAfterPaused) {
  EXPECT_EQ(EventTypeForTransition(S::kProvisioning, S::kRunning), "session.ready");
  EXPECT_EQ(EventTypeForTransition(S::kPaused, S::kRunning), "session.resumed");
}

TEST(EventTest, EveryOtherMoveIsNamedAfterTheStateEntered) {
  EXPECT_EQ(EventTypeForTransition(S::kRunning, S::kPaused), "session.paused");
  EXPECT_EQ(EventTypeForTransition(S::kPending, S::kProvisioning), "session.provisioning");
  EXPECT_EQ(EventTypeForTransition(S::kStopped, S::kProvisioning), "session.provisioning");
  EXPECT_EQ(EventTypeForTransition(S::kRunning, S::kStopping), "session.stopping");
  EXPECT_EQ(EventTypeForTransition(S::kStopping, S::kStopped), "session.stopped");
  EXPECT_EQ(EventTypeForTransition(S::kRunning, S::kTerminating), "session.terminating");
  EXPECT_EQ(EventTypeForTransition(S::kTerminating, S::kTerminated), "session.terminated");
  EXPECT_EQ(EventTypeForTransition(S::kPending, S::kCancelled), "session.cancelled");
  EXPECT_EQ(EventTypeForTransition(S::kProvisioning, S::kError), "session.error");
  EXPECT_EQ(EventTypeForTransition(S::kScheduled, S::kPending), "session.pending");
}

TEST(EventTest, EveryAllowedTransitionHasAKnownType) {
  const S all[] = {S::kScheduled,   S::kPending,    S::kProvisioning, S::kRunning,
                   S::kPaused,      S::kStopping,   S::kStopped,      S::kError,
                   S::kTerminating, S::kTerminated, S::kCancelled};
  for (S from : all) {
    for (S to : all) {
      if (!CanTransition(from, to)) continue;
      EXPECT_TRUE(IsKnownEventType(EventTypeForTransition(from, to)))
          << ToString(from) << " -> " << ToString(to);
    }
  }
}

TEST(EventTest, TypesAreUniqueAndUnknownOnesAreRefused) {
  std::set<std::string_view> seen;
  for (std::string_view t : EventTypes()) EXPECT_TRUE(seen.insert(t).second) << t;
  EXPECT_TRUE(IsKnownEventType("session.keepalive"));
  EXPECT_FALSE(IsKnownEventType("session.running"));
  EXPECT_FALSE(IsKnownEventType("*"));
}

TEST(EventTest, TransitionEventCarriesTheEntry) {
  Session s;
  s.id = "ses_0123456789abcdef";
  s.owner = "usr_alice";
  s.name = "web";
  s.state = S::kRunning;
  auto entry = Transition(s, S::kError, Reason::kError, "system", FromUnixMillis(42), "agent died");
  ASSERT_TRUE(entry.ok());
  Event e = EventForTransition(s, *entry);
  EXPECT_EQ(e.type, "session.error");
  EXPECT_EQ(e.session_id, s.id);
  EXPECT_EQ(e.owner, "usr_alice");
  EXPECT_EQ(e.reason, "error");
  EXPECT_EQ(e.actor, "system");
  EXPECT_EQ(ToUnixMillis(e.at), 42);
  EXPECT_EQ(json::parse(e.data_json),
            json::parse(R"({"from":"running","to":"error","name":"web","message":"agent died"})"));

  Event created = EventForTransition(s, InitialEntry(s, "usr_alice", FromUnixMillis(1)));
  EXPECT_EQ(created.type, "session.created");
  EXPECT_EQ(json::parse(created.data_json),
            json::parse(R"({"from":null,"to":"error","name":"web"})"));
}

TEST(EventTest, JsonHasEveryFieldAndTheDataAsAnObject) {
  Event e;
  e.id = 7;
  e.at = FromUnixMillis(1'780'000'000'123);
  e.type = "session.extended";
  e.session_id = "ses_0123456789abcdef";
  e.owner = "usr_alice";
  e.reason = "user";
  e.actor = "usr_alice";
  e.data_json = R"({"seconds":600})";
  EXPECT_EQ(json::value(EventToJson(e)), json::parse(R"({"id":7,"type":"session.extended",
      "session_id":"ses_0123456789abcdef","owner":"usr_alice","at":"2026-05-28T20:26:40.123Z",
      "reason":"user","actor":"usr_alice","data":{"seconds":600}})"));
  e.data_json = "not json";
  EXPECT_EQ(EventToJson(e).at("data"), json::value(json::object()));
}

}  // namespace
}  // namespace hutch::core
