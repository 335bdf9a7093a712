// Images, tasks and commits as a user sees them through the API, on a real server with real
// sandboxes: a Debian rootfs made by debootstrap runs python3; OCI layouts and docker-save
// archives apply whiteouts and opaque directories; layers are stored once; tampered layers are
// refused at import and at session create; an image in use cannot be deleted; a commit becomes
// an image new sessions see the change in; another user's task does not exist for them.
#include <dirent.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <chrono>
#include <cstdlib>
#include <fstream>
#include <thread>

#include <openssl/evp.h>

#include "cli/http_client.h"
#include "common/json.h"
#include "files/archive.h"
#include "files/codec.h"
#include "files/tar.h"
#include "testing/server_process.h"
#include "testing/test_util.h"

namespace hutch {
namespace {

using client::HttpClient;
using client::HttpResponse;
using std::chrono::milliseconds;

std::string Sha256Hex(std::string_view data) {
  unsigned char md[EVP_MAX_MD_SIZE];
  unsigned int n = 0;
  EVP_Digest(data.data(), data.size(), md, &n, EVP_sha256(), nullptr);
  static constexpr char kHex[] = "0123456789abcdef";
  std::string out;
  for (unsigned i = 0; i < n; ++i) {
    out.push_back(kHex[md[i] >> 4]);
    out.push_back(kHex[md[i] & 15]);
  }
  return out;
}

// A tar built in memory with the tar writer of src/files.
class TarBuilder {
 public:
  TarBuilder& Dir(const std::string& path, uint32_t mode = 0755) {
    files::TarEntry e;
    e.path = path + "/";
    e.type = '5';
    e.mode = mode;
    out_ += files::EncodeTarHeader(e);
    return *this;
  }
  TarBuilder& File(const std::string& path, const std::string& data, uint32_t mode = 0644) {
    files::TarEntry e;
    e.path = path;
    e.type = '0';
    e.mode = mode;
    e.size = data.size();
    out_ += files::EncodeTarHeader(e);
    out_ += data;
    out_ += std::string(files::TarPadding(data.size()), '\0');
    return *this;
  }
  std::string Take() { return out_ + files::TarTrailer(); }

 private:
  std::string out_;
};

std::string Gzip(const std::string& data) {
  auto c = files::MakeCompressor(files::Compression::kGzip);
  std::string out;
  EXPECT_TRUE((*c)->Write(data, &out).ok());
  EXPECT_TRUE((*c)->Finish(&out).ok());
  return out;
}

// The two layers every archive test uses: a base, and one that whites out a/gone and makes d/
// opaque (its old entries vanish, d/new appears).
std::string BaseLayer() {
  return TarBuilder()
      .Dir("etc")
      .File("etc/os-release", "ID=tiny\n")
      .Dir("a")
      .File("a/keep", "keep\n")
      .File("a/gone", "gone\n")
      .Dir("d")
      .File("d/old1", "old1\n")
      .File("d/old2", "old2\n")
      .Take();
}
std::string TopLayer() {
  return TarBuilder()
      .Dir("a")
      .File("a/.wh.gone", "")
      .Dir("d")
      .File("d/.wh..wh..opq", "")
      .File("d/new", "new\n")
      .Take();
}

std::string ConfigJson(const std::vector<std::string>& diff_ids) {
  json::array ids;
  for (const auto& d : diff_ids) ids.emplace_back("sha256:" + d);
  json::object cfg{{"architecture", "amd64"},
                   {"os", "linux"},
                   {"config", json::object{{"Env", json::array{"FOO=bar", "PATH=/bin"}},
                                           {"Cmd", json::array{"/bin/sh"}},
                                           {"WorkingDir", "/a"}}},
                   {"rootfs", json::object{{"type", "layers"}, {"diff_ids", std::move(ids)}}}};
  return json::serialize(cfg);
}

// An OCI image layout as a tar: the base layer gzip'd, the top plain. `tamper_layer` changes a
// byte of the top layer's blob after its digest was taken; `tamper_manifest` one of the
// manifest's.
std::string OciLayout(bool tamper_layer = false, bool tamper_manifest = false) {
  std::string base = BaseLayer(), top = TopLayer();
  std::string base_gz = Gzip(base);
  std::string config = ConfigJson({Sha256Hex(base), Sha256Hex(top)});
  auto desc = [](const std::string& media, const std::string& blob) {
    return json::object{{"mediaType", media},
                        {"digest", "sha256:" + Sha256Hex(blob)},
                        {"size", static_cast<int64_t>(blob.size())}};
  };
  json::object manifest{
      {"schemaVersion", 2},
      {"mediaType", "application/vnd.oci.image.manifest.v1+json"},
      {"config", desc("application/vnd.oci.image.config.v1+json", config)},
      {"layers", json::array{desc("application/vnd.oci.image.layer.v1.tar+gzip", base_gz),
                             desc("application/vnd.oci.image.layer.v1.tar", top)}}};
  std::string manifest_text = json::serialize(manifest);
  json::object index{{"schemaVersion", 2},
                     {"manifests", json::array{desc("application/vnd.oci.image.manifest.v1+json",
                                                    manifest_text)}}};
  std::string top_blob = top;
  if (tamper_layer) top_blob[top_blob.size() / 3] ^= 0x20;
  std::string manifest_blob = manifest_text;
  if (tamper_manifest)
    manifest_blob.replace(manifest_blob.find("schemaVersion\":2"), 16, "schemaVersion\":3");
  TarBuilder t;
  t.File("oci-layout", R"({"imageLayoutVersion":"1.0.0"})")
      .File("index.json", json::serialize(index))
      .Dir("blobs")
      .Dir("blobs/sha256")
      .File("blobs/sha256/" + Sha256Hex(manifest_text), manifest_blob)
      .File("blobs/sha256/" + Sha256Hex(config), config)
      .File("blobs/sha256/" + Sha256Hex(base_gz), base_gz)
      .File("blobs/sha256/" + Sha256Hex(top), top_blob);
  return t.Take();
}

// The same image as `docker save` writes it (the classic layout: <id>/layer.tar, <hex>.json).
std::string DockerSave() {
  std::string base = BaseLayer(), top = TopLayer();
  std::string config = ConfigJson({Sha256Hex(base), Sha256Hex(top)});
  json::array manifest{json::object{{"Config", Sha256Hex(config) + ".json"},
                                    {"RepoTags", json::array{"tiny:latest"}},
                                    {"Layers", json::array{"l1/layer.tar", "l2/layer.tar"}}}};
  return TarBuilder()
      .File("manifest.json", json::serialize(manifest))
      .File(Sha256Hex(config) + ".json", config)
      .Dir("l1")
      .File("l1/layer.tar", base)
      .Dir("l2")
      .File("l2/layer.tar", top)
      .Take();
}

class ImageTest : public ::testing::Test {
 protected:
  void SetUp() override {
    if (geteuid() != 0) GTEST_SKIP() << "needs root (namespaces, mounts, cgroups, loop devices)";
    config_ = dir_.path() + "/config.yaml";
    std::ofstream(config_) << "controller_tick_ms: 50\norphan_sweep_seconds: 3600\n";
    auto server = hutch::testing::ServerProcess::Start(HUTCH_BINARY, "", {"--config", config_});
    ASSERT_TRUE(server.ok()) << server.status().ToString();
    server_ = std::move(*server);
  }

  void TearDown() override {
    if (!server_ || IsSkipped()) return;
    auto list = Json("GET", "/v1/sessions?limit=1000", "", 200);
    for (const auto& s : list["sessions"].as_array())
      Call("DELETE", "/v1/sessions/" + std::string(s.at("id").as_string()) + "?purge=true");
  }

  bool disks_available() { return server_->Log().find("ext4 per session") != std::string::npos; }

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
    EXPECT_EQ(r.status, want) << method << " " << target << " → " << r.body;
    boost::system::error_code ec;
    auto v = json::parse(r.body, ec);
    return !ec && v.is_object() ? v.as_object() : json::object();
  }
  // Uploads an archive for import; answers the task.
  json::object Upload(const std::string& name, const std::string& archive,
                      const std::string& format = "auto") {
    auto http = HttpClient::Create(server_->url(), server_->token());
    size_t off = 0;
    HttpClient::Producer produce = [&](char* buf, size_t cap) -> Result<size_t> {
      size_t n = std::min(cap, archive.size() - off);
      memcpy(buf, archive.data() + off, n);
      off += n;
      return n;
    };
    std::string body;
    auto r =
        http->Transfer("POST", "/v1/images/" + name + "/import?format=" + format,
                       {{"Content-Type", "application/x-tar"}},
                       static_cast<uint64_t>(archive.size()), produce, [&](std::string_view d) {
                         body.append(d);
                         return true;
                       });
    EXPECT_TRUE(r.ok()) << r.status().ToString();
    if (!r.ok()) return {};
    EXPECT_EQ(r->status, 202) << r->body << body;
    auto v = json::parse(r->body.empty() ? body : r->body);
    return v.as_object();
  }
  // Polls a task to its end.
  json::object WaitTask(const json::object& task, int timeout_s = 600) {
    std::string id(task.at("id").as_string());
    auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(timeout_s);
    json::object t = task;
    while (std::chrono::steady_clock::now() < deadline) {
      t = Json("GET", "/v1/tasks/" + id, "", 200);
      std::string state(t["state"].as_string());
      if (state == "succeeded" || state == "failed") return t;
      std::this_thread::sleep_for(milliseconds(100));
    }
    ADD_FAILURE() << "task " << id << " did not end: " << json::serialize(t);
    return t;
  }
  json::object Import(const std::string& name, const std::string& archive,
                      const std::string& format = "auto") {
    json::object task = Upload(name, archive, format);
    if (!task.contains("id")) return {};
    return WaitTask(task);
  }
  std::string Create(const std::string& image) {
    json::object s =
        Json("POST", "/v1/sessions", json::serialize(json::object{{"image", image}}), 201);
    return s.contains("id") ? std::string(s["id"].as_string()) : "";
  }
  // A file of a session through the files API (no shell needed in the image).
  HttpResponse ReadFile(const std::string& id, const std::string& path) {
    return Call("GET", "/v1/sessions/" + id + "/files?path=" + path);
  }
  int LayerCount() {
    return hutch::testing::CountDirEntries(server_->data_dir() + "/images/layers");
  }

  hutch::testing::TempDir dir_{"hutch-img"};
  std::string config_;
  std::unique_ptr<hutch::testing::ServerProcess> server_;
};

TEST_F(ImageTest, OciLayoutAppliesWhiteoutsAndOpaqueDirectories) {
  json::object t = Import("tiny", OciLayout());
  ASSERT_EQ(t["state"], "succeeded") << json::serialize(t);
  const json::object& img = t["result"].as_object();
  EXPECT_EQ(img.at("name"), "tiny");
  EXPECT_EQ(img.at("source"), "oci");
  EXPECT_EQ(img.at("layers").as_array().size(), 2u);
  EXPECT_EQ(img.at("config").at("workdir"), "/a");

  std::string id = Create("tiny");
  ASSERT_FALSE(id.empty());
  EXPECT_EQ(ReadFile(id, "/a/keep").body, "keep\n");
  EXPECT_EQ(ReadFile(id, "/a/gone").status, 404);  // whited out by the top layer
  EXPECT_EQ(ReadFile(id, "/d/new").body, "new\n");
  EXPECT_EQ(ReadFile(id, "/d/old1").status, 404);  // d/ is opaque in the top layer
  EXPECT_EQ(ReadFile(id, "/d/old2").status, 404);
  EXPECT_EQ(ReadFile(id, "/etc/os-release").body, "ID=tiny\n");
  // The image's env is the session's (under its own).
  json::object info = Json("GET", "/v1/images/tiny", "", 200);
  EXPECT_EQ(info["used_by"].as_array().size(), 1u);
  EXPECT_EQ(info["used_count"].as_int64(), 1);
}

TEST_F(ImageTest, DockerSaveSharesTheLayersOfTheSameImageFromOci) {
  ASSERT_EQ(Import("tiny-oci", OciLayout())["state"], "succeeded");
  EXPECT_EQ(LayerCount(), 2);
  json::object t = Import("tiny-docker", DockerSave());
  ASSERT_EQ(t["state"], "succeeded") << json::serialize(t);
  EXPECT_EQ(t["result"].at("source"), "docker-archive");
  // Stored once: the same two layers (by the digest of their uncompressed tar), although one
  // archive had the base gzip'd and the other plain.
  EXPECT_EQ(LayerCount(), 2);
  json::object a = Json("GET", "/v1/images/tiny-oci", "", 200);
  json::object b = Json("GET", "/v1/images/tiny-docker", "", 200);
  EXPECT_EQ(a["layers"], b["layers"]);

  std::string id = Create("tiny-docker");
  EXPECT_EQ(ReadFile(id, "/a/gone").status, 404);
  EXPECT_EQ(ReadFile(id, "/d/new").body, "new\n");
  EXPECT_EQ(ReadFile(id, "/d/old1").status, 404);

  // Deleting one image keeps the layers the other has.
  Json("DELETE", "/v1/images/tiny-oci", "", 200);
  EXPECT_EQ(LayerCount(), 2);
  json::object list = Json("GET", "/v1/images", "", 200);
  std::vector<std::string> names;
  for (const auto& i : list["images"].as_array()) names.emplace_back(i.at("name").as_string());
  EXPECT_EQ(names, (std::vector<std::string>{"host", "tiny-docker"}));
}

TEST_F(ImageTest, TamperedLayerOrManifestIsRefusedAtImport) {
  json::object t = Import("bad-layer", OciLayout(/*tamper_layer=*/true));
  ASSERT_EQ(t["state"], "failed");
  EXPECT_EQ(t["error"].at("code"), "invalid_argument");
  EXPECT_NE(std::string(t["error"].at("message").as_string()).find("tampered"), std::string::npos)
      << json::serialize(t);
  t = Import("bad-manifest", OciLayout(false, /*tamper_manifest=*/true));
  ASSERT_EQ(t["state"], "failed");
  EXPECT_NE(std::string(t["error"].at("message").as_string()).find("tampered"), std::string::npos)
      << json::serialize(t);
  // Nothing of either is kept.
  EXPECT_EQ(Call("GET", "/v1/images/bad-layer").status, 404);
  EXPECT_EQ(Call("GET", "/v1/images/bad-manifest").status, 404);
  EXPECT_EQ(LayerCount(), 0);
  EXPECT_EQ(hutch::testing::CountDirEntries(server_->data_dir() + "/images/tmp"), 0);
}

TEST_F(ImageTest, LayerChangedOnDiskIsRefusedAtSessionCreate) {
  ASSERT_EQ(Import("tiny", OciLayout())["state"], "succeeded");
  json::object img = Json("GET", "/v1/images/tiny", "", 200);
  std::string digest(img["layers"].as_array()[0].at("digest").as_string());
  std::string file = server_->data_dir() + "/images/layers/" + digest.substr(7) + "/root/a/keep";
  {
    std::ofstream f(file, std::ios::app);
    f << "evil\n";
  }
  HttpResponse r = Call("POST", "/v1/sessions", R"({"image":"tiny"})");
  EXPECT_NE(r.status, 201) << r.body;
  EXPECT_NE(r.body.find("integrity"), std::string::npos) << r.body;
  EXPECT_NE(r.body.find("changed on disk"), std::string::npos) << r.body;
}

TEST_F(ImageTest, DeleteIsRefusedWhileASessionUsesTheImage) {
  ASSERT_EQ(Import("tiny", OciLayout())["state"], "succeeded");
  std::string id = Create("tiny");
  json::object e = Json("DELETE", "/v1/images/tiny", "", 409);
  EXPECT_EQ(e["error"].at("code"), "conflict");
  EXPECT_NE(std::string(e["error"].at("message").as_string()).find(id), std::string::npos);
  EXPECT_EQ(Json("DELETE", "/v1/images/host", "", 409)["error"].at("code"), "conflict");
  Json("DELETE", "/v1/sessions/" + id, "", 200);
  Json("DELETE", "/v1/images/tiny", "", 200);
  EXPECT_EQ(LayerCount(), 0);
  EXPECT_EQ(Call("GET", "/v1/images/tiny").status, 404);
}

TEST_F(ImageTest, CommitMakesAnImageNewSessionsSeeTheChangeIn) {
  if (!disks_available()) GTEST_SKIP() << "no session disks on this host (tmpfs layers)";
  ASSERT_EQ(Import("tiny", OciLayout())["state"], "succeeded");
  std::string id = Create("tiny");
  ASSERT_EQ(Call("PUT", "/v1/sessions/" + id + "/files?path=/a/added.txt", "added\n").status / 100,
            2);
  ASSERT_EQ(Call("DELETE", "/v1/sessions/" + id + "/files?path=/a/keep").status, 200);
  ASSERT_EQ(
      Call("PUT", "/v1/sessions/" + id + "/files?path=/etc/os-release", "ID=changed\n").status /
          100,
      2);
  auto t0 = std::chrono::steady_clock::now();
  json::object task = Json("POST", "/v1/sessions/" + id + "/commit", R"({"image":"tiny-2"})", 202);
  ASSERT_TRUE(task.contains("id"));
  EXPECT_EQ(task["kind"], "session.commit");
  json::object done = WaitTask(task);
  auto ms = std::chrono::duration_cast<milliseconds>(std::chrono::steady_clock::now() - t0).count();
  ASSERT_EQ(done["state"], "succeeded") << json::serialize(done);
  EXPECT_EQ(done["progress"].as_double(), 1.0);
  std::cout << "[ timing ] commit (task, small layer): " << ms << " ms\n";
  EXPECT_EQ(done["result"].at("layers").as_array().size(), 3u);  // the image's two + the change
  EXPECT_EQ(Json("GET", "/v1/sessions/" + id, "", 200)["state"], "running");  // thawed

  std::string child = Create("tiny-2");
  EXPECT_EQ(ReadFile(child, "/a/added.txt").body, "added\n");
  EXPECT_EQ(ReadFile(child, "/a/keep").status, 404);  // the deletion is a whiteout layer
  EXPECT_EQ(ReadFile(child, "/etc/os-release").body, "ID=changed\n");
  EXPECT_EQ(ReadFile(child, "/d/new").body, "new\n");
  // Committing a session of image host is refused: its files are the host's.
  std::string host = Create("host");
  EXPECT_EQ(
      Json("POST", "/v1/sessions/" + host + "/commit", R"({"image":"nope"})", 409)["error"].at(
          "code"),
      "conflict");
}

TEST_F(ImageTest, AnotherUsersTaskIsNotFound) {
  json::object task = Upload("tiny", OciLayout());
  ASSERT_TRUE(task.contains("id"));
  WaitTask(task);
  Json("POST", "/v1/users", R"({"name":"bob"})", 201);
  json::object tok = Json("POST", "/v1/tokens?owner=bob", R"({"name":"t"})", 201);
  std::string bob(tok["token"].as_string());
  std::string id(task["id"].as_string());
  json::object e = Json("GET", "/v1/tasks/" + id, "", 404, bob);
  EXPECT_EQ(e["error"].at("code"), "not_found");
  Json("GET", "/v1/tasks/tsk_nosuchtask00000", "", 404);
  // Images are shared: bob sees it, but neither who made it nor may he delete it.
  json::object img = Json("GET", "/v1/images/tiny", "", 200, bob);
  EXPECT_TRUE(img["owner"].is_null());
  Json("DELETE", "/v1/images/tiny", "", 403, bob);
}

TEST_F(ImageTest, BadRequestsGetTheErrorShape) {
  EXPECT_EQ(Json("POST", "/v1/images", R"({"name":"x"})", 400)["error"].at("code"),
            "invalid_argument");
  EXPECT_EQ(Json("POST", "/v1/images", R"({"name":"host","build":{"debootstrap":{"suite":"b"}}})",
                 400)["error"]
                .at("code"),
            "invalid_argument");
  EXPECT_EQ(
      Json("POST", "/v1/images", R"({"name":"x","build":{"debootstrap":{}}})", 400)["error"].at(
          "code"),
      "invalid_argument");
  json::object t = Import("notatar", std::string(2000, 'x'));
  EXPECT_EQ(t["state"], "failed");
  EXPECT_EQ(Call("GET", "/v1/images/host").status, 200);
  EXPECT_EQ(Call("GET", "/v1/images/nosuch").status, 404);
  // A bad name is refused before the upload is read; an unknown image makes no session.
  EXPECT_EQ(Json("POST", "/v1/images/BAD/import", "x", 400)["error"].at("code"),
            "invalid_argument");
  EXPECT_EQ(Json("POST", "/v1/sessions", R"({"image":"nosuch"})", 404)["error"].at("code"),
            "not_found");
  EXPECT_EQ(Json("GET", "/v1/sessions", "", 200)["sessions"].as_array().size(), 0u);
}

// A task the server was running when it died ends failed with the reason, after the restart;
// what it had half built is gone.
TEST_F(ImageTest, TaskInterruptedByARestartEndsFailed) {
  if (access("/usr/sbin/debootstrap", X_OK) != 0)
    GTEST_SKIP() << "debootstrap is not installed (scripts/setup installs it)";
  json::object task = Json("POST", "/v1/images",
                           R"({"name":"deb","build":{"debootstrap":{"suite":"bookworm"}}})", 202);
  ASSERT_TRUE(task.contains("id"));
  EXPECT_EQ(task["kind"], "image.build");
  std::string id(task["id"].as_string());
  for (int i = 0; i < 200; ++i) {
    if (Json("GET", "/v1/tasks/" + id, "", 200)["state"] == "running") break;
    std::this_thread::sleep_for(milliseconds(50));
  }
  server_->Kill9();
  ASSERT_TRUE(server_->Restart().ok());
  json::object t = Json("GET", "/v1/tasks/" + id, "", 200);
  EXPECT_EQ(t["state"], "failed") << json::serialize(t);
  EXPECT_EQ(t["error"].at("code"), "unavailable");
  EXPECT_NE(std::string(t["error"].at("message").as_string()).find("server stopped"),
            std::string::npos);
  EXPECT_EQ(Call("GET", "/v1/images/deb").status, 404);
  EXPECT_EQ(hutch::testing::CountDirEntries(server_->data_dir() + "/images/tmp"), 0);
}

// A Debian rootfs made by debootstrap (cached: /var/cache/hutch-test), imported as a rootfs
// tar, runs python3.
TEST_F(ImageTest, DebootstrapRootfsRunsPython) {
  const std::string cache = "/var/cache/hutch-test/bookworm-minbase-python3";
  struct stat st;
  if (stat(cache.c_str(), &st) != 0) {
    if (access("/usr/sbin/debootstrap", X_OK) != 0)
      GTEST_SKIP() << "debootstrap is not installed (scripts/setup installs it)";
    std::string tmp = cache + ".tmp";
    std::string cmd = "mkdir -p /var/cache/hutch-test && rm -rf " + tmp +
                      " && debootstrap --variant=minbase --include=python3 bookworm " + tmp +
                      " http://deb.debian.org/debian > /var/cache/hutch-test/debootstrap.log 2>&1 "
                      "&& mv " +
                      tmp + " " + cache;
    auto t0 = std::chrono::steady_clock::now();
    if (std::system(cmd.c_str()) != 0)
      GTEST_SKIP() << "debootstrap failed (is deb.debian.org reachable?); see "
                      "/var/cache/hutch-test/debootstrap.log";
    std::cout
        << "[ timing ] debootstrap minbase+python3: "
        << std::chrono::duration_cast<milliseconds>(std::chrono::steady_clock::now() - t0).count()
        << " ms\n";
  }
  // The rootfs as a tar stream, made with the files API's tree walker.
  files::Root root;
  root.fd = UniqueFd(open(cache.c_str(), O_PATH | O_DIRECTORY | O_CLOEXEC));
  ASSERT_TRUE(root.fd);
  auto tar = files::TreeTar::Open(root, "/");
  ASSERT_TRUE(tar.ok()) << tar.status().ToString();
  auto http = HttpClient::Create(server_->url(), server_->token());
  std::string pending;
  size_t off = 0;
  bool ended = false;
  uint64_t bytes = 0;
  HttpClient::Producer produce = [&](char* buf, size_t cap) -> Result<size_t> {
    while (off == pending.size() && !ended) {
      ASSIGN_OR_RETURN(auto piece, (*tar)->Next(1 << 20));
      if (!piece) {
        ended = true;
        break;
      }
      pending = std::move(*piece);
      off = 0;
    }
    size_t n = std::min(cap, pending.size() - off);
    memcpy(buf, pending.data() + off, n);
    off += n;
    bytes += n;
    return n;
  };
  std::string body;
  auto t0 = std::chrono::steady_clock::now();
  auto r = http->Transfer("POST", "/v1/images/bookworm/import?format=rootfs",
                          {{"Content-Type", "application/x-tar"}}, std::nullopt, produce,
                          [&](std::string_view d) {
                            body.append(d);
                            return true;
                          });
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  ASSERT_EQ(r->status, 202) << r->body << body;
  json::object task = json::parse(r->body.empty() ? body : r->body).as_object();
  json::object done = WaitTask(task);
  auto import_ms =
      std::chrono::duration_cast<milliseconds>(std::chrono::steady_clock::now() - t0).count();
  ASSERT_EQ(done["state"], "succeeded") << json::serialize(done);
  std::cout << "[ timing ] import of a " << (bytes >> 20) << " MiB rootfs tar: " << import_ms
            << " ms\n";

  auto c0 = std::chrono::steady_clock::now();
  std::string id = Create("bookworm");
  ASSERT_FALSE(id.empty());
  std::cout
      << "[ timing ] create on it (stamps checked): "
      << std::chrono::duration_cast<milliseconds>(std::chrono::steady_clock::now() - c0).count()
      << " ms\n";
  json::object body_exec{
      {"cmd", json::array{"python3", "-c",
                          "import sys, platform; print(6*7, sys.version_info[0], "
                          "open('/etc/debian_version').read().strip()[:2])"}}};
  json::object res = Json("POST", "/v1/sessions/" + id + "/exec", json::serialize(body_exec), 200);
  EXPECT_EQ(res["exit_code"].as_int64(), 0) << json::serialize(res);
  EXPECT_EQ(res["stdout"], "42 3 12\n") << json::serialize(res);
}

// An image as `docker save` writes it from
//   FROM scratch
//   COPY busybox /bin/busybox
//   COPY index.html /app/www/index.html
//   WORKDIR /app
//   CMD ["/bin/busybox", "httpd", "-f", "-p", "8080", "-h", "www"]
// The web root is relative: the server finds it only when its command starts in the workdir.
std::string WebAppImage() {
  std::ifstream in("/bin/busybox", std::ios::binary);  // busybox-static (scripts/setup)
  std::string busybox((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  EXPECT_GT(busybox.size(), 100000u) << "/bin/busybox (Debian's busybox-static) is missing";
  std::string layer = TarBuilder()
                          .Dir("bin")
                          .File("bin/busybox", busybox, 0755)
                          .Dir("app")
                          .Dir("app/www")
                          .File("app/www/index.html", "hello from the image\n")
                          .Take();
  json::object cfg{
      {"architecture", "amd64"},
      {"os", "linux"},
      {"config",
       json::object{{"Env", json::array{"PATH=/bin"}},
                    {"Cmd", json::array{"/bin/busybox", "httpd", "-f", "-p", "8080", "-h", "www"}},
                    {"WorkingDir", "/app"}}},
      {"rootfs",
       json::object{{"type", "layers"}, {"diff_ids", json::array{"sha256:" + Sha256Hex(layer)}}}}};
  std::string config = json::serialize(cfg);
  json::array manifest{json::object{{"Config", Sha256Hex(config) + ".json"},
                                    {"RepoTags", json::array{"webapp:latest"}},
                                    {"Layers", json::array{"l1/layer.tar"}}}};
  return TarBuilder()
      .File("manifest.json", json::serialize(manifest))
      .File(Sha256Hex(config) + ".json", config)
      .Dir("l1")
      .File("l1/layer.tar", layer)
      .Take();
}

TEST_F(ImageTest, AnImageRunsInItsWorkdirAndItsCmdServesThroughTheProxy) {
  json::object t = Import("webapp", WebAppImage());
  ASSERT_EQ(t["state"], "succeeded") << json::serialize(t);
  EXPECT_EQ(t["result"].at("config").at("workdir"), "/app");

  json::object s =
      Json("POST", "/v1/sessions", R"({"image": "webapp", "run_image_cmd": true})", 201);
  ASSERT_EQ(s["state"], "running") << json::serialize(s);
  EXPECT_EQ(s["run_image_cmd"], true);
  std::string id(s["id"].as_string());

  // exec without a cwd starts in the image's workdir; one with a cwd where it says.
  json::object pwd =
      Json("POST", "/v1/sessions/" + id + "/exec", R"({"cmd": ["/bin/busybox", "pwd"]})", 200);
  EXPECT_EQ(pwd["stdout"], "/app\n") << json::serialize(pwd);
  json::object elsewhere = Json("POST", "/v1/sessions/" + id + "/exec",
                                R"({"cmd": ["/bin/busybox", "pwd"], "cwd": "/bin"})", 200);
  EXPECT_EQ(elsewhere["stdout"], "/bin\n");

  // The image's command runs as the service image-cmd, and answers through the port proxy.
  json::object services = Json("GET", "/v1/sessions/" + id + "/services", "", 200);
  ASSERT_EQ(services["services"].as_array().size(), 1u) << json::serialize(services);
  EXPECT_EQ(services["services"].as_array()[0].at("name"), "image-cmd");
  HttpResponse page;
  auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
  do {
    page = Call("GET", "/v1/sessions/" + id + "/ports/8080/index.html");
    if (page.status == 200) break;
    std::this_thread::sleep_for(milliseconds(100));
  } while (std::chrono::steady_clock::now() < deadline);
  EXPECT_EQ(page.status, 200) << page.body;
  EXPECT_EQ(page.body, "hello from the image\n");

  // Without run_image_cmd nothing of the image's runs; host and images without a command refuse.
  json::object plain = Json("POST", "/v1/sessions", R"({"image": "webapp"})", 201);
  EXPECT_EQ(Json("GET", "/v1/sessions/" + std::string(plain["id"].as_string()) + "/services", "",
                 200)["services"]
                .as_array()
                .size(),
            0u);
  json::object on_host = Json("POST", "/v1/sessions", R"({"run_image_cmd": true})", 400);
  EXPECT_NE(json::serialize(on_host).find("image host has none"), std::string::npos)
      << json::serialize(on_host);
}

}  // namespace
}  // namespace hutch
