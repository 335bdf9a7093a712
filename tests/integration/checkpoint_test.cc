// Checkpoints, restore, fork and from_checkpoint as a user sees them through the API, on a real
// server with real sandboxes and session disks: files come back exactly, forks diverge, a
// tampered checkpoint is refused, bad input gets the error shape, and nothing leaks.
#include <dirent.h>
#include <fcntl.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <fstream>
#include <set>
#include <thread>

#include "cli/http_client.h"
#include "common/json.h"
#include "testing/server_process.h"
#include "testing/test_util.h"

namespace hutch {
namespace {

using client::HttpClient;
using client::HttpResponse;
using std::chrono::milliseconds;

// A tree with what a copy most easily gets wrong: modes, a symlink, an empty directory, a hard
// link, a sparse file, and a few MiB of data spread over many blocks.
constexpr const char* kMakeTree = R"sh(set -e
mkdir -p /srv/t/sub/deeper /srv/t/empty
printf 'hello\n' > /srv/t/a.txt
chmod 0640 /srv/t/a.txt
printf 'x' > /srv/t/sub/deeper/x
chmod 0711 /srv/t/sub
ln -s ../a.txt /srv/t/sub/link
ln /srv/t/a.txt /srv/t/hard
head -c 3145728 /dev/urandom > /srv/t/big.bin
truncate -s 50M /srv/t/sparse
printf 'tail' >> /srv/t/sparse
echo made)sh";

// Everything about the tree that a restore must bring back, hashed: names, types, modes, sizes,
// link targets, link counts and every file's contents.
constexpr const char* kHashTree =
    R"sh(cd /srv/t && { find . -xdev -printf '%p %y %m %s %n %l\n' | sort; find . -xdev -type f -exec sha256sum {} + | sort; } | sha256sum | cut -c1-64)sh";

// Loop devices whose image lives in `data_dir` (a session's disk, a warm one of the pool).
int CountLoopDevicesUnder(const std::string& data_dir) {
  int n = 0;
  DIR* d = opendir("/sys/block");
  if (!d) return -1;
  while (dirent* e = readdir(d)) {
    std::string name = e->d_name;
    if (!name.starts_with("loop")) continue;
    std::ifstream f("/sys/block/" + name + "/loop/backing_file");
    std::string backing;
    if (f && std::getline(f, backing) && backing.starts_with(data_dir + "/")) ++n;
  }
  closedir(d);
  return n;
}

class CheckpointTest : public ::testing::Test {
 protected:
  void SetUp() override {
    if (geteuid() != 0) GTEST_SKIP() << "needs root (namespaces, mounts, cgroups, loop devices)";
    config_ = dir_.path() + "/config.yaml";
    // Small warm disks: the tests' layers are a few MiB; forks copy only data.
    std::ofstream(config_) << "controller_tick_ms: 50\norphan_sweep_seconds: 3600\n";
    auto server = hutch::testing::ServerProcess::Start(HUTCH_BINARY, "", {"--config", config_});
    ASSERT_TRUE(server.ok()) << server.status().ToString();
    server_ = std::move(*server);
    if (!disks_available()) GTEST_SKIP() << "no session disks on this host (tmpfs layers)";
    loops_before_ = WaitForLoops(-1);
    before_ = hutch::testing::TakeLeakSnapshotOf(server_->data_dir(), {});
  }

  void TearDown() override {
    if (!server_ || HasFatalFailure() || IsSkipped()) return;
    std::vector<std::string> ids;
    auto list = Json("GET", "/v1/sessions?limit=1000", "", 200);
    for (const auto& s : list["sessions"].as_array()) {
      ids.emplace_back(s.at("id").as_string());
      Call("DELETE", "/v1/sessions/" + ids.back());
    }
    // Nothing of any session is left: mounts, cgroups, processes, session directories, loop
    // devices beyond the pool's warm disks, checkpoint files.
    auto after = hutch::testing::TakeLeakSnapshotOf(server_->data_dir(), ids);
    after.open_fds = before_.open_fds;
    EXPECT_EQ(after, before_);
    EXPECT_EQ(WaitForLoops(loops_before_), loops_before_);
    EXPECT_EQ(hutch::testing::CountDirEntries(server_->data_dir() + "/checkpoints"), 1)
        << "only the key is left";
  }

  bool disks_available() { return server_->Log().find("ext4 per session") != std::string::npos; }

  // The number of loop devices under the data dir once it stops changing (the pool refills and
  // empties in the background), or once it is `want`.
  int WaitForLoops(int want) {
    int last = -2, stable = 0;
    for (int i = 0; i < 300; ++i) {
      int n = CountLoopDevicesUnder(server_->data_dir());
      if (n == want) return n;
      stable = n == last ? stable + 1 : 0;
      last = n;
      if (want < 0 && stable >= 10) return n;
      std::this_thread::sleep_for(milliseconds(50));
    }
    return last;
  }

  HttpResponse Call(std::string_view method, const std::string& target,
                    std::string_view body = {}) {
    auto http = HttpClient::Create(server_->url(), server_->token());
    auto r = http->Request(method, target, body);
    EXPECT_TRUE(r.ok()) << r.status().ToString();
    return r.ok() ? *r : HttpResponse{};
  }
  json::object Json(std::string_view method, const std::string& target, std::string_view body,
                    int want) {
    HttpResponse r = Call(method, target, body);
    EXPECT_EQ(r.status, want) << method << " " << target << " " << body << " → " << r.body;
    auto v = json::parse(r.body);
    return v.is_object() ? v.as_object() : json::object();
  }
  // The error code of a failed call, checking the error shape.
  std::string ErrorCode(std::string_view method, const std::string& target, std::string_view body,
                        int want) {
    json::object o = Json(method, target, body, want);
    if (!o.contains("error") || !o["error"].is_object()) {
      ADD_FAILURE() << "no error object: " << json::serialize(o);
      return "";
    }
    EXPECT_TRUE(o["error"].as_object().contains("message"));
    return std::string(o["error"].at("code").as_string());
  }
  std::string Create(const std::string& body = "{}") {
    json::object s = Json("POST", "/v1/sessions", body, 201);
    return s.contains("id") ? std::string(s["id"].as_string()) : "";
  }
  std::string State(const std::string& id) {
    return std::string(Json("GET", "/v1/sessions/" + id, "", 200)["state"].as_string());
  }
  std::string Sh(const std::string& id, const std::string& script) {
    json::object body{{"cmd", json::array{"/bin/sh", "-c", script}}};
    json::object r = Json("POST", "/v1/sessions/" + id + "/exec", json::serialize(body), 200);
    EXPECT_EQ(r["exit_code"].as_int64(), 0) << script << ": " << json::serialize(r);
    return r.contains("stdout") ? std::string(r["stdout"].as_string()) : "";
  }
  json::object Checkpoint(const std::string& id, const std::string& name, int want = 201) {
    return Json("POST", "/v1/sessions/" + id + "/checkpoints",
                json::serialize(json::object{{"name", name}}), want);
  }
  std::string CheckpointFile(const std::string& id, const std::string& name,
                             const std::string& ext) {
    return server_->data_dir() + "/checkpoints/" + id + "/" + name + ext;
  }
  // Flips one byte of the file at its first data extent.
  static void FlipByte(const std::string& path) {
    int fd = open(path.c_str(), O_RDWR);
    ASSERT_GE(fd, 0) << path;
    off_t at = lseek(fd, 0, SEEK_DATA);
    ASSERT_GE(at, 0);
    at += 1024 + 17;  // past the first KiB: inside the superblock of an image
    unsigned char c = 0;
    ASSERT_EQ(pread(fd, &c, 1, at), 1);
    c ^= 0x5a;
    ASSERT_EQ(pwrite(fd, &c, 1, at), 1);
    close(fd);
  }

  hutch::testing::TempDir dir_{"hutch-ckpt"};
  std::string config_;
  std::unique_ptr<hutch::testing::ServerProcess> server_;
  hutch::testing::LeakSnapshot before_;
  int loops_before_ = 0;
};

TEST_F(CheckpointTest, RestoreBringsBackExactlyTheCheckpointedFiles) {
  std::string id = Create();
  ASSERT_EQ(Sh(id, kMakeTree), "made\n");
  std::string at_checkpoint = Sh(id, kHashTree);
  json::object c = Checkpoint(id, "first");
  EXPECT_EQ(c["name"].as_string(), "first");
  EXPECT_EQ(c["session_id"].as_string(), id);
  EXPECT_TRUE(c["valid"].as_bool());
  EXPECT_GT(c["data_bytes"].as_int64(), 3 << 20);   // the random file at least
  EXPECT_LT(c["data_bytes"].as_int64(), 40 << 20);  // holes stay holes (sparse, the disk)
  EXPECT_GE(c["size_bytes"].as_int64(), int64_t{1} << 20);
  EXPECT_EQ(c["sha256"].as_string().size(), 64u);
  EXPECT_EQ(State(id), "running");  // thawed

  // Change, delete, add, re-mode, re-link.
  Sh(id,
     "set -e; printf changed > /srv/t/a.txt; rm -r /srv/t/sub/deeper /srv/t/big.bin; "
     "mkdir /srv/t/new; echo n > /srv/t/new/file; chmod 0600 /srv/t/hard; rmdir /srv/t/empty; "
     "ln -sf /etc/passwd /srv/t/sub/link; echo outside > /srv/outside");
  EXPECT_NE(Sh(id, kHashTree), at_checkpoint);

  json::object s = Json("POST", "/v1/sessions/" + id + "/checkpoints/first/restore", "", 200);
  EXPECT_EQ(s["state"].as_string(), "running");
  EXPECT_EQ(Sh(id, kHashTree), at_checkpoint);
  EXPECT_EQ(Sh(id, "test -e /srv/outside && echo yes || echo no"), "no\n");

  // Listed with size and time; restorable again; deletable.
  json::object list = Json("GET", "/v1/sessions/" + id + "/checkpoints", "", 200);
  ASSERT_EQ(list["checkpoints"].as_array().size(), 1u);
  json::object listed = list["checkpoints"].as_array()[0].as_object();
  EXPECT_EQ(listed["name"].as_string(), "first");
  EXPECT_EQ(listed["data_bytes"], c["data_bytes"]);
  EXPECT_TRUE(ParseTime(listed["created_at"].as_string()).has_value());
  Json("GET", "/v1/sessions/" + id + "/checkpoints/first", "", 200);
  Json("DELETE", "/v1/sessions/" + id + "/checkpoints/first", "", 200);
  EXPECT_EQ(ErrorCode("GET", "/v1/sessions/" + id + "/checkpoints/first", "", 404), "not_found");
  EXPECT_FALSE(hutch::testing::CountDirEntries(server_->data_dir() + "/checkpoints/" + id) > 0);

  // The history says what happened; the events too.
  json::object events = Json("GET", "/v1/events?limit=1000&session=" + id, "", 200);
  std::set<std::string> types;
  for (const auto& e : events["events"].as_array())
    types.insert(std::string(e.at("type").as_string()));
  EXPECT_TRUE(types.count("session.checkpoint_created"));
  EXPECT_TRUE(types.count("session.checkpoint_restored"));
  EXPECT_TRUE(types.count("session.checkpoint_deleted"));
}

TEST_F(CheckpointTest, PausedAndStoppedSessionsCanBeCheckpointedAndRestored) {
  std::string id = Create();
  Sh(id, "mkdir -p /srv/t && echo one > /srv/t/f");
  Json("POST", "/v1/sessions/" + id + "/pause", "", 200);
  Checkpoint(id, "paused");
  EXPECT_EQ(State(id), "paused");  // still frozen: the checkpoint did not thaw it
  Json("POST", "/v1/sessions/" + id + "/resume", "", 200);
  Sh(id, "echo two > /srv/t/f");
  Json("POST", "/v1/sessions/" + id + "/stop", "", 200);
  Checkpoint(id, "stopped");
  // Restoring a stopped session replaces its files and leaves it stopped.
  json::object s = Json("POST", "/v1/sessions/" + id + "/checkpoints/paused/restore", "", 200);
  EXPECT_EQ(s["state"].as_string(), "stopped");
  Json("POST", "/v1/sessions/" + id + "/start", "", 200);
  EXPECT_EQ(Sh(id, "cat /srv/t/f"), "one\n");
  Json("POST", "/v1/sessions/" + id + "/checkpoints/stopped/restore", "", 200);
  EXPECT_EQ(Sh(id, "cat /srv/t/f"), "two\n");
  // A paused session restored comes back running.
  Json("POST", "/v1/sessions/" + id + "/pause", "", 200);
  s = Json("POST", "/v1/sessions/" + id + "/checkpoints/paused/restore", "", 200);
  EXPECT_EQ(s["state"].as_string(), "running");
  EXPECT_EQ(Sh(id, "cat /srv/t/f"), "one\n");
}

TEST_F(CheckpointTest, TenForksSeeTheParentsFilesAndDivergeIndependently) {
  std::string parent = Create(R"({"name": "origin", "labels": {"team": "a"}})");
  ASSERT_EQ(Sh(parent, kMakeTree), "made\n");
  std::string tree = Sh(parent, kHashTree);
  json::object r =
      Json("POST", "/v1/sessions/" + parent + "/fork",
           R"({"count": 10, "name_prefix": "kid", "overrides": {"env": {"K": "v"}}})", 201);
  ASSERT_EQ(r["sessions"].as_array().size(), 10u);
  std::vector<std::string> kids;
  for (const auto& v : r["sessions"].as_array()) {
    const json::object& k = v.as_object();
    kids.emplace_back(k.at("id").as_string());
    EXPECT_EQ(k.at("parent_id").as_string(), parent);
    EXPECT_EQ(k.at("state").as_string(), "running");
    EXPECT_EQ(k.at("labels").at("team").as_string(), "a");  // the parent's settings
    EXPECT_TRUE(k.at("name").as_string().starts_with("kid-"));
  }
  for (const auto& k : kids) {
    EXPECT_EQ(Sh(k, kHashTree), tree) << k;
    EXPECT_EQ(Sh(k, "echo $K"), "v\n");
    Sh(k, "echo " + k + " > /srv/t/a.txt; touch /srv/t/only-" + k);
  }
  for (const auto& k : kids) {
    EXPECT_EQ(Sh(k, "cat /srv/t/a.txt; ls /srv/t | grep -c only-"), k + "\n1\n") << k;
  }
  EXPECT_EQ(Sh(parent, kHashTree), tree);  // the parent is untouched by its children
  EXPECT_EQ(hutch::testing::CountDirEntries(server_->data_dir() + "/checkpoints/" + parent), 0)
      << "the fork's capture is gone";

  json::object lineage = Json("GET", "/v1/sessions/" + parent + "/lineage", "", 200);
  EXPECT_EQ(lineage["ancestors"].as_array().size(), 0u);
  ASSERT_EQ(lineage["children"].as_array().size(), 10u);
  std::set<std::string> listed;
  for (const auto& c : lineage["children"].as_array()) listed.emplace(c.at("id").as_string());
  EXPECT_EQ(listed, std::set<std::string>(kids.begin(), kids.end()));
  // A grandchild, from a child's checkpoint: two ancestors, nearest first.
  Checkpoint(kids[0], "mine");
  std::string grandchild = Create(json::serialize(json::object{{"from_checkpoint", "kid-1/mine"}}));
  EXPECT_EQ(Sh(grandchild, "cat /srv/t/a.txt"), kids[0] + "\n");
  lineage = Json("GET", "/v1/sessions/" + grandchild + "/lineage", "", 200);
  ASSERT_EQ(lineage["ancestors"].as_array().size(), 2u);
  EXPECT_EQ(lineage["ancestors"].as_array()[0].at("id").as_string(), kids[0]);
  EXPECT_EQ(lineage["ancestors"].as_array()[1].at("id").as_string(), parent);
}

TEST_F(CheckpointTest, ATamperedImageOrManifestIsRefusedAndNeverUsed) {
  std::string id = Create(R"({"name": "victim"})");
  Sh(id, "mkdir -p /srv/t && echo good > /srv/t/f");
  Checkpoint(id, "img");
  Checkpoint(id, "man");
  Sh(id, "echo later > /srv/t/f");

  FlipByte(CheckpointFile(id, "img", ".img"));
  std::string path = "/v1/sessions/" + id + "/checkpoints/img/restore";
  EXPECT_EQ(ErrorCode("POST", path, "", 409), "conflict");
  HttpResponse refused = Call("POST", path);
  EXPECT_NE(refused.body.find("integrity"), std::string::npos) << refused.body;
  // Refused before anything of it was used: the session runs on its own files.
  EXPECT_EQ(State(id), "running");
  EXPECT_EQ(Sh(id, "cat /srv/t/f"), "later\n");
  EXPECT_EQ(ErrorCode("POST", "/v1/sessions",
                      json::serialize(json::object{{"from_checkpoint", "victim/img"}}), 409),
            "conflict");

  // The manifest: a changed digest (as someone would write to match a swapped image).
  std::string manifest = CheckpointFile(id, "man", ".json");
  std::string text;
  {
    std::ifstream f(manifest);
    std::getline(f, text);
  }
  size_t at = text.find("\"sha256\":\"");
  ASSERT_NE(at, std::string::npos);
  at += 10;
  text[at] = text[at] == '0' ? '1' : '0';
  std::ofstream(manifest) << text << "\n";
  EXPECT_EQ(ErrorCode("POST", "/v1/sessions/" + id + "/checkpoints/man/restore", "", 409),
            "conflict");
  EXPECT_EQ(ErrorCode("GET", "/v1/sessions/" + id + "/checkpoints/man", "", 409), "conflict");
  EXPECT_EQ(ErrorCode("POST", "/v1/sessions",
                      json::serialize(json::object{{"from_checkpoint", "victim/man"}}), 409),
            "conflict");
  EXPECT_EQ(Sh(id, "cat /srv/t/f"), "later\n");
  // Both are still listed, the bad manifest marked invalid, and can be deleted.
  json::object list = Json("GET", "/v1/sessions/" + id + "/checkpoints", "", 200);
  EXPECT_EQ(list["checkpoints"].as_array().size(), 2u);
  Json("DELETE", "/v1/sessions/" + id + "/checkpoints/man", "", 200);
  Json("DELETE", "/v1/sessions/" + id + "/checkpoints/img", "", 200);
  // No session was left behind by the refused from_checkpoint creates.
  json::object sessions = Json("GET", "/v1/sessions", "", 200);
  for (const auto& s : sessions["sessions"].as_array())
    EXPECT_TRUE(s.at("id").as_string() == id || s.at("state").as_string() == "error")
        << json::serialize(s);
}

TEST_F(CheckpointTest, ASandboxOfAnEarlierServerProcessIsCheckpointedAndRestored) {
  std::string id = Create();
  Sh(id, "mkdir -p /srv/t && echo before > /srv/t/f && head -c 2097152 /dev/urandom > /srv/t/r");
  std::string tree = Sh(id, kHashTree);
  // The server dies; its successor reattaches to the sandbox, whose disk it never mounted: it
  // syncs the disk through the agent's root.
  server_->Kill9();
  ASSERT_TRUE(server_->Restart().ok());
  ASSERT_EQ(State(id), "running");
  Checkpoint(id, "after-restart");
  Sh(id, "echo after > /srv/t/f; rm /srv/t/r");
  Json("POST", "/v1/sessions/" + id + "/checkpoints/after-restart/restore", "", 200);
  EXPECT_EQ(Sh(id, kHashTree), tree);
  EXPECT_EQ(Sh(id, "cat /srv/t/f"), "before\n");
}

TEST_F(CheckpointTest, BadInputGetsTheErrorShape) {
  std::string id = Create(R"({"name": "box"})");
  std::string base = "/v1/sessions/" + id;
  EXPECT_EQ(ErrorCode("POST", base + "/checkpoints", "{}", 400), "invalid_argument");
  EXPECT_EQ(ErrorCode("POST", base + "/checkpoints", "not json", 400), "invalid_argument");
  EXPECT_EQ(ErrorCode("POST", base + "/checkpoints", R"({"name": "Bad_Name"})", 400),
            "invalid_argument");
  EXPECT_EQ(ErrorCode("POST", base + "/checkpoints", R"({"name": ".hidden"})", 400),
            "invalid_argument");
  EXPECT_EQ(ErrorCode("POST", base + "/checkpoints", R"({"name": "ok", "x": 1})", 400),
            "invalid_argument");
  EXPECT_EQ(ErrorCode("POST", base + "/checkpoints", R"({"name": 7})", 400), "invalid_argument");
  EXPECT_EQ(ErrorCode("POST", "/v1/sessions/ses_nope/checkpoints", R"({"name": "a"})", 404),
            "not_found");
  Checkpoint(id, "a");
  EXPECT_EQ(ErrorCode("POST", base + "/checkpoints", R"({"name": "a"})", 409), "conflict");
  EXPECT_EQ(ErrorCode("POST", base + "/checkpoints/nope/restore", "", 404), "not_found");
  // A name that is no DNS label never reaches a path; one with slashes matches no route.
  EXPECT_EQ(ErrorCode("POST", base + "/checkpoints/Bad_Name/restore", "", 400), "invalid_argument");
  EXPECT_EQ(ErrorCode("GET", base + "/checkpoints/.hidden", "", 400), "invalid_argument");
  EXPECT_EQ(ErrorCode("POST", base + "/checkpoints/..%2f..%2fx/restore", "", 404), "not_found");
  EXPECT_EQ(ErrorCode("DELETE", base + "/checkpoints/nope", "", 404), "not_found");
  EXPECT_EQ(ErrorCode("POST", base + "/fork", R"({"count": 0})", 400), "invalid_argument");
  EXPECT_EQ(ErrorCode("POST", base + "/fork", R"({"count": 101})", 400), "invalid_argument");
  EXPECT_EQ(ErrorCode("POST", base + "/fork", R"({"count": "2"})", 400), "invalid_argument");
  EXPECT_EQ(ErrorCode("POST", base + "/fork", R"({"name_prefix": "-x"})", 400), "invalid_argument");
  EXPECT_EQ(ErrorCode("POST", base + "/fork", R"({"overrides": {"name": "x"}})", 400),
            "invalid_argument");
  EXPECT_EQ(
      ErrorCode("POST", base + "/fork", R"({"overrides": {"resources": {"disk_mb": 9}}})", 400),
      "invalid_argument");
  EXPECT_EQ(ErrorCode("POST", base + "/fork", R"({"overrides": {"resources": {"cpus": -1}}})", 400),
            "invalid_argument");
  EXPECT_EQ(ErrorCode("POST", "/v1/sessions", R"({"from_checkpoint": "box"})", 400),
            "invalid_argument");
  EXPECT_EQ(ErrorCode("POST", "/v1/sessions", R"({"from_checkpoint": "box/"})", 400),
            "invalid_argument");
  EXPECT_EQ(ErrorCode("POST", "/v1/sessions", R"({"from_checkpoint": "box/nope"})", 404),
            "not_found");
  EXPECT_EQ(ErrorCode("POST", "/v1/sessions", R"({"from_checkpoint": "nobody/a"})", 404),
            "not_found");
  EXPECT_EQ(ErrorCode("POST", "/v1/sessions",
                      R"({"from_checkpoint": "box/a", "start_at": "2099-01-01T00:00:00Z"})", 400),
            "invalid_argument");
  // A fork whose children cannot all be made (a name taken) makes none.
  Create(R"({"name": "dup-2"})");
  EXPECT_EQ(ErrorCode("POST", base + "/fork", R"({"count": 3, "name_prefix": "dup"})", 409),
            "conflict");
  json::object lineage = Json("GET", base + "/lineage", "", 200);
  EXPECT_EQ(lineage["children"].as_array().size(), 0u);
  // A terminated session has no checkpoints left and takes none.
  Json("DELETE", base, "", 200);
  EXPECT_EQ(ErrorCode("POST", base + "/checkpoints", R"({"name": "b"})", 409), "conflict");
  EXPECT_EQ(ErrorCode("POST", base + "/fork", "{}", 409), "conflict");
  EXPECT_FALSE(hutch::testing::CountDirEntries(server_->data_dir() + "/checkpoints/" + id) > 0);
}

}  // namespace
}  // namespace hutch
