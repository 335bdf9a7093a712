// Templates and volumes as a user sees them through the API, on a real server with real
// sandboxes: a template's setup runs before the session is ready, its errors name the field and
// the line, requests override it; a volume's data outlives its sessions, read-only attaches get
// EROFS, the size limit gives ENOSPC, attached volumes cannot be deleted, other users' templates
// and volumes do not exist for them, and no mount or loop device is left behind.
#include <dirent.h>
#include <sys/stat.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <fstream>
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

constexpr const char* kTemplate = R"yaml(kind: SessionTemplate
metadata:
  name: py
  description: a course environment
spec:
  env:
    COURSE: intro
    LEVEL: 1
  labels: {course: intro}
  ttl_seconds: 600
  setup:
    - mkdir -p /srv/course && echo "$COURSE" > /srv/course/name
    - echo second >> /srv/course/name
)yaml";

class TemplatesVolumesTest : public ::testing::Test {
 protected:
  void SetUp() override {
    if (geteuid() != 0) GTEST_SKIP() << "needs root (namespaces, mounts, cgroups, loop devices)";
    config_ = dir_.path() + "/config.yaml";
    std::ofstream(config_) << "controller_tick_ms: 50\norphan_sweep_seconds: 3600\n";
    auto server = hutch::testing::ServerProcess::Start(HUTCH_BINARY, "", {"--config", config_});
    ASSERT_TRUE(server.ok()) << server.status().ToString();
    server_ = std::move(*server);
    disks_ = server_->Log().find("ext4 per session") != std::string::npos;
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
    auto volumes = Json("GET", "/v1/volumes", "", 200);
    for (const auto& v : volumes["volumes"].as_array())
      Json("DELETE", "/v1/volumes/" + std::string(v.at("id").as_string()), "", 200);
    // Nothing is left: mounts, cgroups, processes, session directories, loop devices beyond the
    // pool's warm disks, volume images.
    auto after = hutch::testing::TakeLeakSnapshotOf(server_->data_dir(), ids);
    after.open_fds = before_.open_fds;
    EXPECT_EQ(after, before_);
    EXPECT_EQ(WaitForLoops(loops_before_), loops_before_);
    EXPECT_EQ(hutch::testing::CountDirEntries(server_->data_dir() + "/volumes"), 0);
  }

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

  HttpResponse Call(std::string_view method, const std::string& target, std::string_view body = {},
                    const std::string& token = "") {
    auto http = HttpClient::Create(server_->url(), token.empty() ? server_->token() : token);
    auto r = http->Request(method, target, body);
    EXPECT_TRUE(r.ok()) << r.status().ToString();
    return r.ok() ? *r : HttpResponse{};
  }
  json::object Json(std::string_view method, const std::string& target, std::string_view body,
                    int want, const std::string& token = "") {
    HttpResponse r = Call(method, target, body, token);
    EXPECT_EQ(r.status, want) << method << " " << target << " " << body << " → " << r.body;
    auto v = json::parse(r.body);
    return v.is_object() ? v.as_object() : json::object();
  }
  std::string ErrorMessage(std::string_view method, const std::string& target,
                           std::string_view body, int want, const std::string& token = "") {
    json::object o = Json(method, target, body, want, token);
    if (!o.contains("error") || !o["error"].is_object()) {
      ADD_FAILURE() << "no error object: " << json::serialize(o);
      return "";
    }
    return std::string(o["error"].at("message").as_string());
  }
  std::string Create(const std::string& body) {
    json::object s = Json("POST", "/v1/sessions", body, 201);
    return s.contains("id") ? std::string(s["id"].as_string()) : "";
  }
  json::object Exec(const std::string& id, const std::string& script) {
    json::object body{{"cmd", json::array{"/bin/sh", "-c", script}}};
    return Json("POST", "/v1/sessions/" + id + "/exec", json::serialize(body), 200);
  }
  std::string Sh(const std::string& id, const std::string& script) {
    json::object r = Exec(id, script);
    EXPECT_EQ(r["exit_code"].as_int64(), 0) << script << ": " << json::serialize(r);
    return r.contains("stdout") ? std::string(r["stdout"].as_string()) : "";
  }
  std::string Volume(const std::string& name, int64_t size_mb = 64) {
    json::object v = Json("POST", "/v1/volumes",
                          json::serialize(json::object{{"name", name}, {"size_mb", size_mb}}), 201);
    return v.contains("id") ? std::string(v["id"].as_string()) : "";
  }
  static std::string Attach(const std::string& volume, const std::string& path, bool ro) {
    return json::serialize(json::object{
        {"volumes",
         json::array{json::object{{"volume", volume}, {"path", path}, {"read_only", ro}}}}});
  }

#define REQUIRE_DISKS() \
  if (!disks_) GTEST_SKIP() << "no loop devices or mke2fs here: the server has no volumes"

  hutch::testing::TempDir dir_{"hutch-tmplvol"};
  std::string config_;
  std::unique_ptr<hutch::testing::ServerProcess> server_;
  hutch::testing::LeakSnapshot before_;
  int loops_before_ = 0;
  bool disks_ = false;
};

TEST_F(TemplatesVolumesTest, TemplateSetupRunsBeforeTheSessionIsReady) {
  json::object t = Json("POST", "/v1/templates", kTemplate, 201);
  EXPECT_EQ(t["metadata"].at("name").as_string(), "py");
  // Applying again replaces it.
  Json("POST", "/v1/templates", kTemplate, 200);
  json::object list = Json("GET", "/v1/templates", "", 200);
  ASSERT_EQ(list["templates"].as_array().size(), 1u);

  json::object s = Json("POST", "/v1/sessions", R"({"template":"py"})", 201);
  std::string id(s["id"].as_string());
  EXPECT_EQ(s["state"].as_string(), "running");
  EXPECT_EQ(s["template"].as_string(), "py");
  EXPECT_EQ(s["env"].at("LEVEL").as_string(), "1");
  EXPECT_EQ(s["labels"].at("course").as_string(), "intro");
  EXPECT_EQ(s["ttl_seconds"].as_int64(), 600);
  // Both setup commands ran, in order, with the session's env, before create answered.
  EXPECT_EQ(Sh(id, "cat /srv/course/name"), "intro\nsecond\n");
}

TEST_F(TemplatesVolumesTest, BadTemplateIsRefusedNamingTheFieldAndTheLine) {
  std::string bad = kTemplate;
  bad.replace(bad.find("ttl_seconds: 600"), 16, "ttl_seconds: -5");
  std::string msg = ErrorMessage("POST", "/v1/templates", bad, 400);
  EXPECT_NE(msg.find("line 10"), std::string::npos) << msg;
  EXPECT_NE(msg.find("spec.ttl_seconds"), std::string::npos) << msg;
  msg = ErrorMessage("POST", "/v1/templates",
                     "kind: SessionTemplate\nmetadata:\n  name: v\nspec:\n  volumes:\n"
                     "    - volume: data\n      path: /sys/x\n",
                     400);
  EXPECT_NE(msg.find("line 7"), std::string::npos) << msg;
  EXPECT_NE(msg.find("spec.volumes[0].path"), std::string::npos) << msg;
  msg = ErrorMessage("POST", "/v1/templates",
                     "kind: SessionTemplate\nmetadata: {name: s}\nspec:\n  services:\n"
                     "    - name: web\n      command: x\n      health: {tcp: true}\n",
                     400);
  EXPECT_NE(msg.find("line 5"), std::string::npos) << msg;
  EXPECT_NE(msg.find("a health check needs the service's port"), std::string::npos) << msg;
  EXPECT_EQ(Json("GET", "/v1/templates", "", 200)["templates"].as_array().size(), 0u);
  // A session from a template that does not exist.
  ErrorMessage("POST", "/v1/sessions", R"({"template":"nope"})", 404);
}

TEST_F(TemplatesVolumesTest, RequestFieldsOverrideTheTemplate) {
  Json("POST", "/v1/templates", kTemplate, 201);
  json::object s = Json("POST", "/v1/sessions",
                        R"({"template":"py","env":{"LEVEL":"2"},"ttl_seconds":1200,)"
                        R"("setup":["echo override > /srv/o"]})",
                        201);
  std::string id(s["id"].as_string());
  EXPECT_EQ(s["env"].at("LEVEL").as_string(), "2");
  EXPECT_EQ(s["env"].at("COURSE").as_string(), "intro");  // merged, not replaced
  EXPECT_EQ(s["ttl_seconds"].as_int64(), 1200);
  EXPECT_EQ(Sh(id, "cat /srv/o; test -e /srv/course/name || echo no-template-setup"),
            "override\nno-template-setup\n");
}

TEST_F(TemplatesVolumesTest, FailingSetupPutsTheSessionInErrorWithCommandExitAndOutput) {
  std::string msg = ErrorMessage(
      "POST", "/v1/sessions",
      R"({"name":"broken","setup":["echo fine","echo 'no such package' >&2; exit 3","echo never"]})",
      400);
  for (const char* want : {"setup[1]", "exit 3", "exited with 3", "no such package"})
    EXPECT_NE(msg.find(want), std::string::npos) << want << " not in: " << msg;
  json::object s = Json("GET", "/v1/sessions/broken", "", 200);
  EXPECT_EQ(s["state"].as_string(), "error");
  EXPECT_EQ(s["reason"].as_string(), "error");
  EXPECT_NE(s["error"].as_string().find("exited with 3"), std::string::npos);
}

TEST_F(TemplatesVolumesTest, VolumeDataOutlivesTheSessionThatWroteIt) {
  REQUIRE_DISKS();
  std::string vol = Volume("data");
  std::string a = Create(Attach("data", "/mnt/data/deep", false));
  Sh(a, "echo kept > /mnt/data/deep/file && mkdir /mnt/data/deep/dir && sync");
  // Root inside owns what it writes, and the volume's root.
  EXPECT_EQ(Sh(a, "stat -c '%u:%g' /mnt/data/deep /mnt/data/deep/file"), "0:0\n0:0\n");
  Json("DELETE", "/v1/sessions/" + a, "", 200);

  std::string b = Create(Attach("data", "/data", false));
  EXPECT_EQ(Sh(b, "cat /data/file"), "kept\n");
  json::object v = Json("GET", "/v1/volumes/data", "", 200);
  EXPECT_EQ(v["id"].as_string(), vol);
  EXPECT_EQ(v["sessions"].as_array().size(), 1u);
  EXPECT_GT(v["used_bytes"].as_int64(), 0);
  EXPECT_LE(v["size_bytes"].as_int64(), int64_t{64} << 20);
}

TEST_F(TemplatesVolumesTest, ReadOnlyAttachesShareAVolumeAndGetErofs) {
  REQUIRE_DISKS();
  Volume("ref");
  std::string w = Create(Attach("ref", "/ref", false));
  Sh(w, "echo reference > /ref/r");
  // While one session writes, nobody else may attach it.
  EXPECT_NE(
      ErrorMessage("POST", "/v1/sessions", Attach("ref", "/ref", true), 409).find("read-write"),
      std::string::npos);
  Json("DELETE", "/v1/sessions/" + w, "", 200);

  std::string r1 = Create(Attach("ref", "/ref", true));
  std::string r2 = Create(Attach("ref", "/srv/ref", true));
  EXPECT_EQ(Sh(r1, "cat /ref/r"), "reference\n");
  EXPECT_EQ(Sh(r2, "cat /srv/ref/r"), "reference\n");
  json::object write = Exec(r1, "echo x > /ref/new");
  EXPECT_NE(write["exit_code"].as_int64(), 0);
  EXPECT_NE(write["stderr"].as_string().find("Read-only file system"), std::string::npos)
      << json::serialize(write);
  // Not even root inside can make it writable.
  write = Exec(r1, "mount -o remount,rw /ref && echo x > /ref/new");
  EXPECT_NE(write["exit_code"].as_int64(), 0);
  // A writer cannot join readers either.
  ErrorMessage("POST", "/v1/sessions", Attach("ref", "/ref", false), 409);
}

TEST_F(TemplatesVolumesTest, SizeLimitGivesEnospcAndSparesTheHost) {
  REQUIRE_DISKS();
  std::string vol = Volume("small", 16);
  std::string id = Create(Attach("small", "/small", false));
  json::object r = Exec(id, "dd if=/dev/zero of=/small/fill bs=1M count=64 2>&1; sync");
  EXPECT_NE(r["stdout"].as_string().find("No space left on device"), std::string::npos)
      << json::serialize(r);
  struct stat st;
  ASSERT_EQ(stat((server_->data_dir() + "/volumes/" + vol + ".img").c_str(), &st), 0);
  EXPECT_LE(st.st_blocks * 512, int64_t{17} << 20);
  // The session's own disk is untouched.
  Sh(id, "echo still > /root/ok");
}

TEST_F(TemplatesVolumesTest, DeleteIsRefusedWhileAnySessionHasTheVolume) {
  REQUIRE_DISKS();
  std::string vol = Volume("busy");
  std::string id = Create(Attach("busy", "/b", false));
  ErrorMessage("DELETE", "/v1/volumes/busy", "", 409);
  Json("POST", "/v1/sessions/" + id + "/stop", "", 200);
  ErrorMessage("DELETE", "/v1/volumes/" + vol, "", 409);  // stopped keeps it
  Json("DELETE", "/v1/sessions/" + id, "", 200);
  Json("DELETE", "/v1/volumes/busy", "", 200);
  EXPECT_NE(access((server_->data_dir() + "/volumes/" + vol + ".img").c_str(), F_OK), 0);
  ErrorMessage("GET", "/v1/volumes/busy", "", 404);
}

TEST_F(TemplatesVolumesTest, AttachmentsSurviveStopStartAndAServerRestart) {
  REQUIRE_DISKS();
  Volume("keep");
  std::string id = Create(Attach("keep", "/k", false));
  Sh(id, "echo one > /k/f");
  Json("POST", "/v1/sessions/" + id + "/stop", "", 200);
  Json("POST", "/v1/sessions/" + id + "/start", "", 200);
  for (int i = 0; i < 200; ++i) {
    if (Json("GET", "/v1/sessions/" + id, "", 200)["state"].as_string() == "running") break;
    std::this_thread::sleep_for(milliseconds(50));
  }
  EXPECT_EQ(Sh(id, "cat /k/f; echo two >> /k/f"), "one\n");
  ASSERT_EQ(server_->Stop(), 0);
  ASSERT_TRUE(server_->Restart().ok());
  EXPECT_EQ(Json("GET", "/v1/sessions/" + id, "", 200)["state"].as_string(), "running");
  EXPECT_EQ(Sh(id, "cat /k/f"), "one\ntwo\n");
  json::object s = Json("GET", "/v1/sessions/" + id, "", 200);
  ASSERT_EQ(s["volumes"].as_array().size(), 1u);
  EXPECT_EQ(s["volumes"].at(0).at("path").as_string(), "/k");
}

TEST_F(TemplatesVolumesTest, AnotherUsersTemplatesAndVolumesDoNotExist) {
  REQUIRE_DISKS();
  std::string vol = Volume("mine");
  Json("POST", "/v1/templates", kTemplate, 201);
  json::object u = Json("POST", "/v1/users", R"({"name":"bob"})", 201);
  std::string bob(u["id"].as_string());
  json::object t = Json("POST", "/v1/tokens?owner=" + bob, R"({"name":"t"})", 201);
  std::string tok(t["token"].as_string());
  ErrorMessage("GET", "/v1/volumes/" + vol, "", 404, tok);
  ErrorMessage("GET", "/v1/volumes/mine", "", 404, tok);
  ErrorMessage("DELETE", "/v1/volumes/" + vol, "", 404, tok);
  ErrorMessage("GET", "/v1/templates/py", "", 404, tok);
  ErrorMessage("DELETE", "/v1/templates/py", "", 404, tok);
  ErrorMessage("POST", "/v1/sessions", R"({"template":"py"})", 404, tok);
  ErrorMessage("POST", "/v1/sessions", Attach("mine", "/m", true), 404, tok);
  EXPECT_EQ(Json("GET", "/v1/volumes", "", 200, tok)["volumes"].as_array().size(), 0u);
  EXPECT_EQ(Json("GET", "/v1/templates", "", 200, tok)["templates"].as_array().size(), 0u);
  // Bob's template of the same name is his own.
  Json("POST", "/v1/templates", kTemplate, 201, tok);
  Json("DELETE", "/v1/templates/py", "", 200, tok);
  Json("GET", "/v1/templates/py", "", 200);
}

TEST_F(TemplatesVolumesTest, SharedTemplatesAreStartedByTheUsersTheyAreSharedWith) {
  auto token_of = [&](const std::string& name, const std::string& role) {
    json::object u = Json("POST", "/v1/users",
                          json::serialize(json::object{{"name", name}, {"role", role}}), 201);
    std::string id(u["id"].as_string());
    json::object t = Json("POST", "/v1/tokens?owner=" + id, R"({"name":"t"})", 201);
    return std::pair{id, std::string(t["token"].as_string())};
  };
  auto [bob, bob_tok] = token_of("bob", "user");
  auto [carol, carol_tok] = token_of("carol", "instructor");
  auto [dave, dave_tok] = token_of("dave", "user");
  // The admin's course template, shared with bob by id and with instructors by role.
  std::string doc = "kind: SessionTemplate\nmetadata:\n  name: course\n  shared_with: [" + bob +
                    ", \"role:instructor\"]\nspec:\n  env: {COURSE: shared}\n";
  Json("POST", "/v1/templates", doc, 201);
  for (const std::string& tok : {bob_tok, carol_tok}) {
    auto list = Json("GET", "/v1/templates", "", 200, tok)["templates"].as_array();
    ASSERT_EQ(list.size(), 1u);
    EXPECT_EQ(list[0].at("metadata").at("name").as_string(), "course");
    Json("GET", "/v1/templates/course", "", 200, tok);
    json::object s = Json("POST", "/v1/sessions", R"({"template":"course"})", 201, tok);
    std::string id(s["id"].as_string());
    EXPECT_EQ(s["owner"].as_string(), tok == bob_tok ? bob : carol);  // the session is theirs
    json::object r = Json("POST", "/v1/sessions/" + id + "/exec",
                          R"({"cmd":["/bin/sh","-c","printf %s \"$COURSE\""]})", 200, tok);
    EXPECT_EQ(r["stdout"].as_string(), "shared");
    Json("DELETE", "/v1/sessions/" + id, "", 200, tok);
    // Shared is not owned: they cannot change or delete it.
    ErrorMessage("DELETE", "/v1/templates/course", "", 404, tok);
  }
  // Dave has no grant: the template does not exist for him, by name or as OWNER/NAME.
  ErrorMessage("GET", "/v1/templates/course", "", 404, dave_tok);
  ErrorMessage("POST", "/v1/sessions", R"({"template":"course"})", 404, dave_tok);
  ErrorMessage("POST", "/v1/sessions", R"({"template":"admin/course"})", 404, dave_tok);
  EXPECT_EQ(Json("GET", "/v1/templates", "", 200, dave_tok)["templates"].as_array().size(), 0u);
  // Public: everyone. Two shared templates of one name are told apart by OWNER/NAME.
  Json("POST", "/v1/templates",
       "kind: SessionTemplate\nmetadata: {name: course, visibility: public}\n", 201, carol_tok);
  std::string msg = ErrorMessage("POST", "/v1/sessions", R"({"template":"course"})", 400, bob_tok);
  EXPECT_NE(msg.find("OWNER/NAME"), std::string::npos) << msg;
  json::object s = Json("POST", "/v1/sessions", R"({"template":"carol/course"})", 201, dave_tok);
  Json("DELETE", "/v1/sessions/" + std::string(s["id"].as_string()), "", 200, dave_tok);
  ErrorMessage("POST", "/v1/sessions", R"({"template":")" + std::string("carol/Bad_Name") + R"("})",
               400, dave_tok);
}

// Volumes follow forks and sessions from a checkpoint (docs/api.md, "Fork"): read-only ones
// come along; a read-write one only when nobody holds it, else 409 saying who does.
TEST_F(TemplatesVolumesTest, ForksAndCheckpointSessionsKeepTheSourcesVolumes) {
  REQUIRE_DISKS();
  std::string vol_id = Volume("ref");
  std::string w = Create(Attach("ref", "/ref", false));
  Sh(w, "echo reference > /ref/r");
  Json("DELETE", "/v1/sessions/" + w, "", 200);
  std::string src = Create(R"({"name": "src", "volumes": [{"volume": "ref", "path": "/ref",
                                                           "read_only": true}]})");

  json::object forked = Json("POST", "/v1/sessions/src/fork", R"({"name_prefix": "kid"})", 201);
  ASSERT_EQ(forked["sessions"].as_array().size(), 1u);
  const json::object& kid = forked["sessions"].as_array()[0].as_object();
  ASSERT_EQ(kid.at("volumes").as_array().size(), 1u) << json::serialize(kid);
  const json::object& m = kid.at("volumes").as_array()[0].as_object();
  EXPECT_EQ(m.at("volume"), "ref");
  EXPECT_EQ(m.at("volume_id").as_string(), vol_id);
  EXPECT_EQ(m.at("path"), "/ref");
  EXPECT_EQ(m.at("read_only"), true);
  std::string kid_id(kid.at("id").as_string());
  EXPECT_EQ(Sh(kid_id, "cat /ref/r"), "reference\n");
  EXPECT_NE(Exec(kid_id, "echo x > /ref/new")["exit_code"].as_int64(), 0);  // still read-only
  // The volume lists both as its users.
  json::object info = Json("GET", "/v1/volumes/ref", "", 200);
  EXPECT_EQ(info["sessions"].as_array().size(), 2u) << json::serialize(info);

  // overrides.volumes replaces them: [] forks without.
  json::object bare = Json("POST", "/v1/sessions/src/fork",
                           R"({"name_prefix": "bare", "overrides": {"volumes": []}})", 201);
  EXPECT_EQ(bare["sessions"].as_array()[0].at("volumes").as_array().size(), 0u);

  // A session from a checkpoint gets them too.
  Json("POST", "/v1/sessions/src/checkpoints", R"({"name": "cp"})", 201);
  json::object from =
      Json("POST", "/v1/sessions", R"({"name": "from-cp", "from_checkpoint": "src/cp"})", 201);
  ASSERT_EQ(from["volumes"].as_array().size(), 1u) << json::serialize(from);
  EXPECT_EQ(Sh(std::string(from["id"].as_string()), "cat /ref/r"), "reference\n");

  // A read-write attachment cannot follow while the source holds it: 409 with who and how.
  Volume("scratch");
  Create(R"({"name": "writer", "volumes": [{"volume": "scratch", "path": "/s"}]})");
  std::string why =
      ErrorMessage("POST", "/v1/sessions/writer/fork", R"({"name_prefix": "w"})", 409);
  EXPECT_NE(why.find("attached read-write to session writer"), std::string::npos) << why;
  EXPECT_NE(why.find("overrides.volumes"), std::string::npos) << why;
  // The same from a checkpoint of it; naming other volumes (here none) starts it.
  Json("POST", "/v1/sessions/writer/checkpoints", R"({"name": "cp"})", 201);
  EXPECT_NE(
      ErrorMessage("POST", "/v1/sessions", R"({"name": "w2", "from_checkpoint": "writer/cp"})", 409)
          .find("attached read-write to session writer"),
      std::string::npos);
  json::object without =
      Json("POST", "/v1/sessions",
           R"({"name": "w3", "from_checkpoint": "writer/cp", "volumes": []})", 201);
  EXPECT_EQ(without["volumes"].as_array().size(), 0u);
}

}  // namespace
}  // namespace hutch
