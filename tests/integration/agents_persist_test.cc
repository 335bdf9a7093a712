// Persistent state, soft delete and restore, remix and PUT of sessions (issue 22,
// docs/agents.md "Persistent state") against a real `hutch serve` and real sandboxes: /persist
// outlives its session, a deleted session's record owns it until the retention window ends and
// can be restored on it, a remix copies the parent's files and persistent volume (running or
// deleted parent), and Raworc's PUT body updates name, metadata and waiting timeout.
#include <gtest/gtest.h>

#include <chrono>
#include <cstdio>
#include <string>
#include <thread>

#include <fmt/format.h>

#include "integration/agents_fixture.h"

namespace hutch {
namespace {

class AgentsPersistTest : public AgentsTest {
 protected:
  std::string Exec(const std::string& id, const std::string& command) {
    auto r = Api().Call("POST", fmt::format("/v1/sessions/{}/exec", id),
                        json::object{{"command", command}});
    EXPECT_TRUE(r.ok()) << r.status().ToString();
    if (!r.ok()) return "";
    EXPECT_EQ(Int(*r, "exit_code"), 0) << Str(*r, "stderr");
    return Str(*r, "stdout");
  }

  // A session with the echo agent and a persistent volume.
  std::string CreatePersistent(const std::string& name) {
    json::object body{{"name", name}, {"persist", true}, {"agent_ids", json::array{"echo"}}};
    auto r = Api().Call("POST", "/v1/sessions", body);
    EXPECT_TRUE(r.ok()) << r.status().ToString();
    if (!r.ok()) return "";
    std::string id = Str(*r, "id");
    sessions_.push_back(id);
    return id;
  }

  json::object Persist(const std::string& id) {
    json::object s = Session(id);
    const json::value* p = s.if_contains("persist");
    return p && p->is_object() ? p->as_object() : json::object();
  }
};

TEST_F(AgentsPersistTest, PersistentVolumeOutlivesItsSessionAndRestoreBringsItBack) {
  AddAgent("echo", ReadSource("examples/agents/echo_agent.py"));
  std::string id = CreatePersistent("keeper");
  ASSERT_FALSE(id.empty());
  json::object p = Persist(id);
  EXPECT_EQ(Str(p, "path"), "/persist");
  const std::string volume = Str(p, "volume");
  ASSERT_FALSE(volume.empty()) << json::serialize(Session(id));
  EXPECT_TRUE(p.at("retained_until").is_null());
  Exec(id, "echo remembered > /persist/state && echo lost > /srv/scratch");
  int64_t asked = Post(id, "before the delete");
  ASSERT_EQ(Replies(id, asked).size(), 1u);

  // Soft delete: the record owns the volume for the retention window; nothing else removes it.
  ASSERT_TRUE(Api().Call("DELETE", "/v1/sessions/" + id).ok());
  p = Persist(id);
  EXPECT_EQ(Str(p, "volume"), volume);
  EXPECT_FALSE(Str(p, "retained_until").empty()) << json::serialize(p);
  auto gone = Api().Call("DELETE", "/v1/volumes/" + volume);
  ASSERT_FALSE(gone.ok());
  EXPECT_EQ(gone.status().code(), Code::kConflict) << gone.status().ToString();

  // Restore: a new session, same name, on the same volume, with the conversation.
  auto restored = Api().Call("POST", fmt::format("/v1/sessions/{}/restore", id));
  ASSERT_TRUE(restored.ok()) << restored.status().ToString();
  std::string again = Str(*restored, "id");
  sessions_.push_back(again);
  EXPECT_NE(again, id);
  EXPECT_EQ(Str(*restored, "name"), "keeper");
  EXPECT_EQ(Str(*restored, "parent_id"), id);
  EXPECT_EQ(Str(Persist(again), "volume"), volume);
  EXPECT_EQ(Exec(again, "cat /persist/state"), "remembered\n");
  EXPECT_EQ(Exec(again, "cat /srv/scratch 2>/dev/null || echo none"), "none\n");
  json::array copied = Messages(again);
  ASSERT_EQ(copied.size(), 2u);  // the question and its answer, nothing answered twice
  EXPECT_EQ(Str(copied[1].as_object(), "content"), "before the delete");
  EXPECT_EQ(Int(copied[1].as_object(), "reply_to"), Int(copied[0].as_object(), "id"));
  int64_t next = Post(again, "after the restore");
  ASSERT_EQ(Replies(again, next).size(), 1u);
  EXPECT_EQ(Messages(again).size(), 4u);
  // The old record gave its volume to the new one: it cannot be restored twice.
  auto twice = Api().Call("POST", fmt::format("/v1/sessions/{}/restore", id));
  ASSERT_FALSE(twice.ok());
  EXPECT_EQ(twice.status().code(), Code::kConflict);
  // A live session is not restored.
  auto live = Api().Call("POST", fmt::format("/v1/sessions/{}/restore", again));
  EXPECT_EQ(live.status().code(), Code::kConflict);

  // A purge takes the volume with the record.
  ASSERT_TRUE(Api().Call("DELETE", fmt::format("/v1/sessions/{}?purge=true", again)).ok());
  auto vol = Api().Call("GET", "/v1/volumes/" + volume);
  EXPECT_EQ(vol.status().code(), Code::kNotFound) << vol.status().ToString();
}

TEST_F(AgentsPersistTest, RemixForksTheFilesAndCopiesThePersistentVolumeOfARunningParent) {
  AddAgent("echo", ReadSource("examples/agents/echo_agent.py"));
  std::string parent = CreatePersistent("parent");
  ASSERT_FALSE(parent.empty());
  Exec(parent, "echo p-state > /persist/state && echo p-file > /srv/file");
  int64_t asked = Post(parent, "in the parent");
  ASSERT_EQ(Replies(parent, asked).size(), 1u);

  auto r = Api().Call("POST", fmt::format("/v1/sessions/{}/remix", parent),
                      json::object{{"name", "child"},
                                   {"starting_prompt", "hello child"},
                                   {"metadata", json::object{{"k", "v"}}},
                                   {"copy_messages", true}});
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  std::string child = Str(*r, "id");
  sessions_.push_back(child);
  EXPECT_EQ(Str(*r, "parent_id"), parent);
  EXPECT_EQ(Str(*r, "name"), "child");
  EXPECT_EQ(json::serialize(r->at("metadata")), R"({"k":"v"})");
  json::object p = Persist(child);
  EXPECT_FALSE(Str(p, "volume").empty());
  EXPECT_NE(Str(p, "volume"), Str(Persist(parent), "volume"));  // a copy, not the same
  EXPECT_EQ(Exec(child, "cat /persist/state /srv/file"), "p-state\np-file\n");
  // The copy is the child's own: writes do not cross.
  Exec(child, "echo c-state > /persist/state");
  EXPECT_EQ(Exec(parent, "cat /persist/state"), "p-state\n");

  // The parent's conversation came along (answered already, so not again), then the prompt.
  json::array msgs = Messages(child);
  ASSERT_GE(msgs.size(), 3u);
  EXPECT_EQ(Str(msgs[0].as_object(), "content"), "in the parent");
  EXPECT_EQ(Str(msgs[2].as_object(), "content"), "hello child");
  ASSERT_EQ(Replies(child, Int(msgs[2].as_object(), "id")).size(), 1u);
  std::this_thread::sleep_for(std::chrono::milliseconds(300));
  EXPECT_EQ(Replies(child, Int(msgs[0].as_object(), "id"), 1, 0).size(), 1u);
  EXPECT_EQ(Messages(child).size(), 4u);

  // Agents that are not the caller's fail the remix before anything is made.
  auto bad = Api().Call("POST", fmt::format("/v1/sessions/{}/remix", parent),
                        json::object{{"agent_ids", json::array{"nobody"}}});
  EXPECT_EQ(bad.status().code(), Code::kNotFound) << bad.status().ToString();
}

TEST_F(AgentsPersistTest, RemixOfADeletedParentCopiesItsRetainedVolume) {
  AddAgent("echo", ReadSource("examples/agents/echo_agent.py"));
  std::string parent = CreatePersistent("gone");
  ASSERT_FALSE(parent.empty());
  Exec(parent, "echo kept > /persist/state");
  ASSERT_TRUE(Api().Call("DELETE", "/v1/sessions/" + parent).ok());
  auto r = Api().Call("POST", fmt::format("/v1/sessions/{}/remix", parent),
                      json::object{{"name", "heir"}});
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  std::string child = Str(*r, "id");
  sessions_.push_back(child);
  EXPECT_EQ(Exec(child, "cat /persist/state"), "kept\n");
  EXPECT_TRUE(WaitAgentState(child, "READY"));  // the parent's agents, started afresh
  // Without a sandbox and without a volume there is nothing to remix.
  auto plain = Api().Call("POST", "/v1/sessions", json::object{{"name", "plain"}});
  ASSERT_TRUE(plain.ok()) << plain.status().ToString();
  std::string plain_id = Str(*plain, "id");
  ASSERT_TRUE(Api().Call("DELETE", "/v1/sessions/" + plain_id).ok());
  auto nothing = Api().Call("POST", fmt::format("/v1/sessions/{}/remix", plain_id));
  EXPECT_EQ(nothing.status().code(), Code::kConflict) << nothing.status().ToString();
}

TEST_F(AgentsPersistTest, PutTakesRaworcsUpdateBody) {
  AddAgent("echo", ReadSource("examples/agents/echo_agent.py"));
  std::string id = CreateSession(json::array{"echo"}, "");
  ASSERT_FALSE(id.empty());
  auto r = Api().Call("PUT", "/v1/sessions/" + id,
                      json::object{{"name", "renamed"},
                                   {"waiting_timeout_seconds", 42},
                                   {"metadata", json::object{{"a", 1}}}});
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_EQ(Str(*r, "name"), "renamed");
  EXPECT_EQ(Int(*r, "waiting_timeout_seconds"), 42);
  EXPECT_EQ(json::serialize(r->at("metadata")), R"({"a":1})");
  json::object s = Session(id);
  EXPECT_EQ(Int(s, "waiting_timeout_seconds"), 42);
  EXPECT_EQ(Str(s, "name"), "renamed");
  auto unknown = Api().Call("PUT", "/v1/sessions/" + id, json::object{{"image", "x"}});
  EXPECT_EQ(unknown.status().code(), Code::kInvalidArgument);
  auto plain = Api().Call("POST", "/v1/sessions", json::object{});
  ASSERT_TRUE(plain.ok());
  sessions_.push_back(Str(*plain, "id"));
  auto no_agents = Api().Call("PUT", "/v1/sessions/" + Str(*plain, "id"),
                              json::object{{"waiting_timeout_seconds", 5}});
  EXPECT_EQ(no_agents.status().code(), Code::kInvalidArgument);
}

// A server whose retention window is a second long.
class ShortRetentionTest : public AgentsPersistTest {
 protected:
  std::vector<std::string> ServerArgs() override {
    config_ = ::testing::TempDir() + "/hutch-retention-" + std::to_string(getpid()) + ".yaml";
    std::ofstream(config_) << "persist_retention_seconds: 1\n";
    return {"--config", config_};
  }
  void TearDown() override {
    AgentsPersistTest::TearDown();
    if (!config_.empty()) std::remove(config_.c_str());
  }
  std::string config_;
};

TEST_F(ShortRetentionTest, TheVolumeGoesWhenTheWindowEndsAndRestoreIsRefused) {
  AddAgent("echo", ReadSource("examples/agents/echo_agent.py"));
  std::string id = CreatePersistent("brief");
  ASSERT_FALSE(id.empty());
  const std::string volume = Str(Persist(id), "volume");
  ASSERT_FALSE(volume.empty());
  ASSERT_TRUE(Api().Call("DELETE", "/v1/sessions/" + id).ok());
  auto end = SteadyClock::now() + std::chrono::seconds(15);
  Code code = Code::kOk;
  while (SteadyClock::now() < end) {
    code = Api().Call("GET", "/v1/volumes/" + volume).status().code();
    if (code == Code::kNotFound) break;
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  EXPECT_EQ(code, Code::kNotFound) << "the volume outlived its retention window";
  auto restored = Api().Call("POST", fmt::format("/v1/sessions/{}/restore", id));
  EXPECT_EQ(restored.status().code(), Code::kConflict) << restored.status().ToString();
}

}  // namespace
}  // namespace hutch
