// `hutch gc` on a real server (docs/server.md, "Garbage collection"): leftovers planted the way
// crashes and older versions leave them — an orphan agent whose server was killed and whose
// session ended meanwhile, an empty session cgroup, a stale mount and loop device, a volume
// image and checkpoint files no session owns, a session directory without a session — are
// listed by the dry run and removed by --apply, while a live session, a volume a deleted
// session left, the retained checkpoints of a soft-deleted session and another data dir's
// sandbox all survive.
#include <dirent.h>
#include <signal.h>
#include <sqlite3.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <cstdio>
#include <fstream>
#include <random>

#include <fmt/format.h>

#include "cli/http_client.h"
#include "common/json.h"
#include "testing/server_process.h"
#include "testing/test_util.h"

namespace hutch {
namespace {

using client::HttpClient;
using client::HttpResponse;

std::string RandomSuffix() {
  std::random_device rd;
  return fmt::format("{:016x}", (uint64_t{rd()} << 32) | rd()).substr(0, 16);
}

// What a shell command prints (stdout), and its exit status in *status.
std::string Shell(const std::string& command, int* status = nullptr) {
  std::string out;
  FILE* p = popen(command.c_str(), "r");
  if (!p) return out;
  char buf[4096];
  while (size_t n = fread(buf, 1, sizeof buf, p)) out.append(buf, n);
  int st = pclose(p);
  if (status) *status = WIFEXITED(st) ? WEXITSTATUS(st) : -1;
  return out;
}

bool IsMountPoint(const std::string& path) {
  for (const std::string& mp : hutch::testing::HostMountPoints())
    if (mp == path) return true;
  return false;
}

// The hierarchies that have hutch's cgroup root.
std::vector<std::string> HutchCgroupRoots() {
  std::vector<std::string> out;
  for (const std::string& h : hutch::testing::CgroupHierarchies()) {
    struct stat st;
    if (stat((h + "/hutch").c_str(), &st) == 0) out.push_back(h + "/hutch");
  }
  return out;
}

bool CgroupExists(const std::string& name) {
  for (const std::string& root : HutchCgroupRoots()) {
    if (access((root + "/" + name).c_str(), F_OK) == 0) return true;
  }
  return false;
}

class GcTest : public ::testing::Test {
 protected:
  void SetUp() override {
    if (geteuid() != 0) GTEST_SKIP() << "needs root (namespaces, mounts, cgroups, loop devices)";
    config_ = dir_.path() + "/config.yaml";
    // No periodic sweep during the test: the test runs the collector itself.
    std::ofstream(config_) << "controller_tick_ms: 50\norphan_sweep_seconds: 3600\n";
    for (auto* s : {&a_, &b_}) {
      auto server = hutch::testing::ServerProcess::Start(HUTCH_BINARY, "", {"--config", config_});
      ASSERT_TRUE(server.ok()) << server.status().ToString();
      *s = std::move(*server);
    }
  }

  void TearDown() override {
    if (!plant_mount_.empty() && IsMountPoint(plant_mount_))
      umount2(plant_mount_.c_str(), MNT_DETACH);
    if (!plant_loop_.empty()) Shell("losetup -d " + plant_loop_ + " 2>/dev/null");
    for (const std::string& root : HutchCgroupRoots()) {
      if (!plant_cgroup_.empty()) rmdir((root + "/" + plant_cgroup_).c_str());
      for (const std::string& g : plant_young_) rmdir((root + "/" + g).c_str());
    }
  }

  HttpResponse Call(hutch::testing::ServerProcess& s, std::string_view method,
                    const std::string& target, std::string_view body = {}) {
    auto http = HttpClient::Create(s.url(), s.token());
    auto r = http->Request(method, target, body);
    EXPECT_TRUE(r.ok()) << r.status().ToString();
    return r.ok() ? *r : HttpResponse{};
  }
  json::object Json(hutch::testing::ServerProcess& s, std::string_view method,
                    const std::string& target, std::string_view body, int want) {
    HttpResponse r = Call(s, method, target, body);
    EXPECT_EQ(r.status, want) << method << " " << target << " " << body << " → " << r.body;
    auto v = json::parse(r.body);
    return v.is_object() ? v.as_object() : json::object();
  }
  std::string Create(hutch::testing::ServerProcess& s, const std::string& body = "{}") {
    json::object o = Json(s, "POST", "/v1/sessions", body, 201);
    return o.contains("id") ? std::string(o["id"].as_string()) : "";
  }
  bool Answers(hutch::testing::ServerProcess& s, const std::string& id) {
    HttpResponse r =
        Call(s, "POST", "/v1/sessions/" + id + "/exec", R"({"cmd":["/bin/sh","-c","echo ok"]})");
    return r.status == 200 && r.body.find("ok\\n") != std::string::npos;
  }
  // `hutch gc ARGS -o json` against server A, parsed.
  json::object CliGc(const std::string& args) {
    int status = -1;
    std::string out = Shell(fmt::format("HUTCH_URL={} HUTCH_TOKEN={} {} gc {} -o json", a_->url(),
                                        a_->token(), HUTCH_BINARY, args),
                            &status);
    EXPECT_EQ(status, 0) << out;
    auto v = json::parse(out);
    return v.is_object() ? v.as_object() : json::object();
  }
  // The agent's pid of a session, from its driver state in the database.
  pid_t AgentPid(const std::string& id) {
    sqlite3* db = nullptr;
    if (sqlite3_open((a_->data_dir() + "/hutch.db").c_str(), &db) != SQLITE_OK) return 0;
    sqlite3_busy_timeout(db, 5000);
    pid_t pid = 0;
    sqlite3_stmt* st = nullptr;
    if (sqlite3_prepare_v2(db, "SELECT driver_state FROM sessions WHERE id = ?1", -1, &st,
                           nullptr) == SQLITE_OK) {
      sqlite3_bind_text(st, 1, id.c_str(), -1, SQLITE_TRANSIENT);
      if (sqlite3_step(st) == SQLITE_ROW) {
        auto v = json::parse(reinterpret_cast<const char*>(sqlite3_column_text(st, 0)));
        if (v.is_object() && v.as_object().contains("agent_pid"))
          pid = static_cast<pid_t>(v.as_object().at("agent_pid").to_number<int64_t>());
      }
    }
    sqlite3_finalize(st);
    sqlite3_close(db);
    return pid;
  }
  // What a killed server leaves when it dies between recording a session's end and tearing its
  // sandbox down — and its session directory gone too (a teardown that got that far): the
  // agent runs on, in its cgroup, with nothing of the store claiming it.
  void EndBehindTheServersBack(const std::string& id) {
    sqlite3* db = nullptr;
    ASSERT_EQ(sqlite3_open((a_->data_dir() + "/hutch.db").c_str(), &db), SQLITE_OK);
    sqlite3_busy_timeout(db, 5000);
    std::string sql = fmt::format(
        "UPDATE sessions SET state = 'terminated', reason = 'user' WHERE id = '{}'", id);
    char* err = nullptr;
    EXPECT_EQ(sqlite3_exec(db, sql.c_str(), nullptr, nullptr, &err), SQLITE_OK) << (err ? err : "");
    sqlite3_free(err);
    sqlite3_close(db);
    hutch::testing::RemoveTree(a_->data_dir() + "/sessions/" + id);
  }

  hutch::testing::TempDir dir_{"hutch-gc"};
  std::string config_;
  std::unique_ptr<hutch::testing::ServerProcess> a_, b_;
  std::string plant_mount_, plant_loop_, plant_cgroup_;
  std::vector<std::string> plant_young_;
};

TEST_F(GcTest, RemovesWhatNothingOwnsAndKeepsWhatSomethingDoes) {
  const std::string data = a_->data_dir();
  // What something owns: a live session, another data dir's session, a volume whose session
  // was deleted, the checkpoints a soft-deleted session retains.
  std::string live = Create(*a_);
  std::string foreign = Create(*b_);
  json::object vol = Json(*a_, "POST", "/v1/volumes", R"({"name":"kept","size_mb":16})", 201);
  std::string vol_id(vol["id"].as_string());
  std::string deleted = Create(*a_, R"({"volumes":[{"volume":"kept","path":"/data"}]})");
  Json(*a_, "DELETE", "/v1/sessions/" + deleted, "", 200);
  std::string retained = data + "/checkpoints/" + deleted;
  ASSERT_EQ(mkdir((data + "/checkpoints").c_str(), 0700) == 0 || errno == EEXIST, true);
  ASSERT_EQ(mkdir(retained.c_str(), 0700), 0);
  std::ofstream(retained + "/kept.img") << "retained";

  // An orphan agent: its server is killed, comes back, and the session ends behind its back.
  std::string orphan = Create(*a_);
  ASSERT_FALSE(orphan.empty());
  a_->Kill9();
  ASSERT_TRUE(a_->Restart().ok()) << a_->Log();
  ASSERT_TRUE(Answers(*a_, live));
  ASSERT_TRUE(Answers(*a_, orphan));
  pid_t orphan_agent = AgentPid(orphan);
  ASSERT_GT(orphan_agent, 0);
  EndBehindTheServersBack(orphan);

  // Planted leftovers.
  const std::string suffix = RandomSuffix();
  plant_cgroup_ = "ses_gc" + suffix;
  for (const std::string& root : HutchCgroupRoots()) {
    std::string g = root + "/" + plant_cgroup_;
    ASSERT_EQ(mkdir(g.c_str(), 0755), 0) << g;
    Shell("touch -d '2 hours ago' " + g);
  }
  plant_mount_ = data + "/stale/mnt";
  ASSERT_EQ(system(("mkdir -p " + plant_mount_).c_str()), 0);
  ASSERT_EQ(mount("gc-test", plant_mount_.c_str(), "tmpfs", 0, "size=1m"), 0);
  std::string loop_file = data + "/stale/disk.img";
  ASSERT_EQ(system(("truncate -s 8M " + loop_file).c_str()), 0);
  plant_loop_ = Shell("losetup -f --show " + loop_file);
  while (!plant_loop_.empty() && plant_loop_.back() == '\n') plant_loop_.pop_back();
  ASSERT_TRUE(plant_loop_.starts_with("/dev/loop")) << plant_loop_;
  std::string orphan_volume = "vol_gc" + suffix;
  std::string volume_image = fmt::format("{}/volumes/{}.img", data, orphan_volume);
  std::ofstream(volume_image) << "no volume has this";
  std::string orphan_checkpoints = data + "/checkpoints/ses_gc" + suffix + "x";
  ASSERT_EQ(mkdir(orphan_checkpoints.c_str(), 0700), 0);
  std::ofstream(orphan_checkpoints + "/cp.img") << "no session has this";
  // Young empty groups: one of a session this server ended (a start and a delete crossed, and
  // the server died before the start's own teardown) is this server's and goes at once; one
  // no session here knows may be another server's create between its mkdir and its clone.
  plant_young_ = {deleted, "ses_gc" + suffix + "z"};
  for (const std::string& root : HutchCgroupRoots())
    for (const std::string& g : plant_young_) ASSERT_EQ(mkdir((root + "/" + g).c_str(), 0755), 0);
  std::string stray_session = "ses_gc" + suffix + "y";
  ASSERT_EQ(mkdir((data + "/sessions/" + stray_session).c_str(), 0700), 0);

  // The dry run lists every leftover and nothing owned, and removes nothing.
  json::object dry = CliGc("");
  ASSERT_TRUE(dry.contains("items")) << json::serialize(dry);
  EXPECT_TRUE(dry["dry_run"].as_bool());
  std::map<std::string, std::string> listed;  // path or owner → kind
  for (const auto& v : dry["items"].as_array()) {
    const json::object& i = v.as_object();
    std::string kind(i.at("kind").as_string());
    listed[std::string(i.at("path").as_string())] = kind;
    if (i.contains("session_id")) listed[std::string(i.at("session_id").as_string())] = kind;
    if (i.contains("volume_id")) listed[std::string(i.at("volume_id").as_string())] = kind;
    EXPECT_FALSE(i.at("removed").as_bool());
  }
  std::string all = json::serialize(dry);
  EXPECT_EQ(listed[orphan], "agent") << all;
  EXPECT_EQ(listed[plant_cgroup_], "cgroup") << all;
  EXPECT_EQ(listed[plant_mount_], "mount") << all;
  EXPECT_EQ(listed[plant_loop_], "loop") << all;
  EXPECT_EQ(listed[orphan_volume], "volume_image") << all;
  EXPECT_EQ(listed[orphan_checkpoints], "checkpoints") << all;
  EXPECT_EQ(listed[stray_session], "sandbox") << all;
  EXPECT_EQ(listed[deleted], "cgroup") << all;
  EXPECT_EQ(listed.count(plant_young_[1]), 0u) << all;
  for (const std::string& owned : {live, foreign, vol_id, retained}) {
    EXPECT_EQ(listed.count(owned), 0u) << owned << " is owned: " << all;
  }
  EXPECT_TRUE(IsMountPoint(plant_mount_));
  EXPECT_EQ(kill(orphan_agent, 0), 0);

  // --apply removes them all.
  json::object applied = CliGc("--apply");
  EXPECT_FALSE(applied["dry_run"].as_bool());
  for (const auto& v : applied["items"].as_array()) {
    EXPECT_TRUE(v.as_object().at("removed").as_bool()) << json::serialize(v);
  }
  EXPECT_FALSE(IsMountPoint(plant_mount_));
  EXPECT_NE(access(("/sys/block/" + plant_loop_.substr(5) + "/loop/backing_file").c_str(), F_OK),
            0);
  EXPECT_FALSE(CgroupExists(plant_cgroup_));
  EXPECT_FALSE(CgroupExists(orphan));
  EXPECT_FALSE(CgroupExists(deleted));
  EXPECT_TRUE(CgroupExists(plant_young_[1]));
  EXPECT_NE(access(volume_image.c_str(), F_OK), 0);
  EXPECT_NE(access(orphan_checkpoints.c_str(), F_OK), 0);
  EXPECT_NE(access((data + "/sessions/" + stray_session).c_str(), F_OK), 0);
  // The orphan agent is gone (killed; init reaps it).
  for (int i = 0; i < 200 && kill(orphan_agent, 0) == 0; ++i) usleep(10000);
  EXPECT_NE(kill(orphan_agent, 0), 0);

  // What something owns is all still there and working.
  EXPECT_TRUE(Answers(*a_, live));
  EXPECT_TRUE(Answers(*b_, foreign));
  EXPECT_TRUE(CgroupExists(foreign));
  EXPECT_EQ(access(fmt::format("{}/volumes/{}.img", data, vol_id).c_str(), F_OK), 0);
  EXPECT_EQ(access((retained + "/kept.img").c_str(), F_OK), 0);
  // And nothing is left to collect.
  json::object again = CliGc("");
  EXPECT_EQ(again["items"].as_array().size(), 0u) << json::serialize(again);

  for (auto& [s, id] : {std::pair{a_.get(), live}, std::pair{b_.get(), foreign}})
    Json(*s, "DELETE", "/v1/sessions/" + id, "", 200);
  Json(*a_, "DELETE", "/v1/volumes/" + vol_id, "", 200);
}

TEST_F(GcTest, OnlyAdminsMayCollect) {
  json::object user = Json(*a_, "POST", "/v1/users", R"({"name":"gcuser"})", 201);
  json::object tok =
      Json(*a_, "POST", fmt::format("/v1/tokens?owner={}", std::string(user["id"].as_string())),
           R"({"name":"t"})", 201);
  auto http = HttpClient::Create(a_->url(), std::string(tok["token"].as_string()));
  auto r = http->Request("POST", "/v1/admin/gc", "{}");
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(r->status, 403) << r->body;
  // A bad field is named.
  HttpResponse bad = Call(*a_, "POST", "/v1/admin/gc", R"({"dry_run":"yes"})");
  EXPECT_EQ(bad.status, 400) << bad.body;
}

}  // namespace
}  // namespace hutch
