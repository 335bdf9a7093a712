// The files API against people trying to leave their sandbox: traversal with "..", absolute
// paths, URL-encoded dots and NUL bytes, symlinks to the host, a symlink swapped in while
// 10,000 copies run (the rename-exchange race of docker cp, CVE-2018-15664), malicious tar
// entries and tar bombs, other users' sessions and tokens without the files scope. A marker
// directory on the host must never be read, written or listed through the API. Needs root.
#include <fcntl.h>
#include <sys/stat.h>

#include <algorithm>
#include <atomic>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <sstream>
#include <thread>

#include <gtest/gtest.h>

#include "files/codec.h"
#include "files/tar.h"
#include "testing/files_fixture.h"

namespace hutch {
namespace {

constexpr char kSecret[] = "HOST-SECRET-9f3c";

std::string ReadHost(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

class FilesEscapeTest : public testing::FilesFixture {
 protected:
  // Thousands of writes in a few seconds: no rate limit (per_second 0 turns it off).
  std::vector<std::string> ServerArgs() override {
    config_ = "/tmp/hutch-files-escape-" + std::to_string(getpid()) + ".yaml";
    std::ofstream(config_) << "rate_limit:\n  per_second: 0\n";
    return {"--config", config_};
  }
  void SetUp() override {
    FilesFixture::SetUp();
    if (IsSkipped() || HasFatalFailure()) return;
    char tmpl[] = "/tmp/hutch-host-marker-XXXXXX";
    ASSERT_NE(mkdtemp(tmpl), nullptr);
    host_dir_ = tmpl;
    std::ofstream(host_dir_ + "/secret") << kSecret;
  }
  void TearDown() override {
    if (!host_dir_.empty()) {
      // Nothing was added to, removed from or changed in the host's marker directory.
      EXPECT_EQ(ReadHost(host_dir_ + "/secret"), kSecret);
      EXPECT_EQ(system(("test \"$(ls -A " + host_dir_ + ")\" = secret").c_str()), 0)
          << "something was created in " << host_dir_;
      EXPECT_EQ(system(("rm -rf " + host_dir_).c_str()), 0);
    }
    FilesFixture::TearDown();
    if (!config_.empty()) unlink(config_.c_str());
  }
  // GET with a raw (already escaped) query: the body must never hold the host's secret.
  void ExpectNoLeak(const std::string& raw_query, int want_status = 0) {
    SCOPED_TRACE(raw_query);
    auto r = Raw("GET", "/v1/sessions/" + session_ + "/files?path=" + raw_query, "");
    EXPECT_EQ(r.body.find(kSecret), std::string::npos) << "LEAK: " << r.head << r.body;
    EXPECT_NE(r.status, 200) << r.body;
    if (want_status) {
      EXPECT_EQ(r.status, want_status) << r.body;
    }
  }

  std::string host_dir_;
  std::string config_;
};

TEST_F(FilesEscapeTest, TraversalWithDotsAbsolutePathsEncodingAndNulStaysInside) {
  std::string rel = host_dir_.substr(1) + "/secret";  // tmp/hutch-host-marker-…/secret
  std::string up = "../../../../../../../..";
  for (std::string q :
       {up + "/" + rel, "/" + rel, "/" + up + "/" + rel, "work/" + up + "/" + rel,
        "%2e%2e/%2e%2e/%2e%2e/%2e%2e/" + rel, "..%2f..%2f..%2f..%2f" + rel,
        "%2E%2E%2F%2E%2E%2F" + rel, "%252e%252e/%252e%252e/" + rel, "/proc/1/root/" + rel,
        "/proc/self/root/" + rel, "/proc/self/cwd/" + rel, "/proc/1/cwd/" + rel})
    ExpectNoLeak(q);
  ExpectNoLeak("/work%00/../" + rel, 400);
  ExpectNoLeak(std::string("/") + rel + "%00", 400);
  // The session's data directory on the host is out of reach the same way.
  std::string token_rel = server_->data_dir().substr(1) + "/admin.token";
  auto r = Raw("GET", "/v1/sessions/" + session_ + "/files?path=" + up + "/" + token_rel, "");
  EXPECT_EQ(r.body.find(server_->token()), std::string::npos) << "LEAK of the admin token";
  // Writes by the same routes land in the sandbox, if anywhere.
  for (std::string q : {up + "/" + host_dir_.substr(1) + "/pwned", host_dir_ + "/pwned",
                        "%2e%2e/%2e%2e/%2e%2e/" + host_dir_.substr(1) + "/pwned"}) {
    auto w = Raw("PUT", "/v1/sessions/" + session_ + "/files?path=" + q + "&parents=true", "x");
    EXPECT_TRUE(w.status == 201 || w.status == 200 || w.status == 404) << w.head << w.body;
  }
}

TEST_F(FilesEscapeTest, SymlinksToTheHostResolveInsideTheSandbox) {
  // Made by a process in the sandbox, pointing at the host's marker by its host path.
  Sh("mkdir -p /work && ln -s " + host_dir_ + " /work/dirlink && ln -s " + host_dir_ +
     "/secret /work/filelink && ln -s / /work/rootlink && ln -s /proc/1/root /work/magic && "
     "ln -s ../../../../../../.. /work/uplink");
  ExpectNoLeak("/work/filelink");
  ExpectNoLeak("/work/dirlink/secret");
  ExpectNoLeak("/work/rootlink" + host_dir_ + "/secret");
  ExpectNoLeak("/work/magic" + host_dir_ + "/secret");
  ExpectNoLeak("/work/uplink" + host_dir_ + "/secret");
  // Listing, stat, archive and watch through them see the sandbox, not the host.
  auto l = Raw("GET", "/v1/sessions/" + session_ + "/files?path=/work/dirlink", "");
  EXPECT_EQ(l.body.find("secret"), std::string::npos) << l.body;
  auto a = Raw("GET", "/v1/sessions/" + session_ + "/archive?path=/work/dirlink", "");
  EXPECT_EQ(a.body.find(kSecret), std::string::npos);
  auto w = Raw("GET", "/v1/sessions/" + session_ + "/files/watch?path=/work/dirlink", "");
  EXPECT_EQ(w.status, 404) << w.body;
  // Writes, mkdir, move and delete through them never reach the host.
  Raw("PUT", Files("?path=/work/dirlink/pwned&parents=true"), "x");
  Raw("PUT", Files("?path=/work/filelink"), "overwritten");
  Raw("POST", "/v1/sessions/" + session_ + "/files/mkdir",
      R"({"path": "/work/dirlink/pwned-dir", "parents": true})");
  Raw("POST", "/v1/sessions/" + session_ + "/files/move",
      R"({"from": "/work/dirlink/secret", "to": "/work/stolen"})");
  Raw("DELETE", Files("?path=/work/dirlink/secret"), "");
  Raw("DELETE", Files("?path=/work/rootlink" + host_dir_ + "&recursive=true"), "");
  // The symlink itself was replaced by a regular file (a PUT replaces the name, never follows).
  EXPECT_EQ(Sh("cat /work/filelink"), "overwritten");
}

// Two threads in the sandbox swap a directory and a symlink to the host with RENAME_EXCHANGE as
// fast as they can, while 10,000 reads, writes and archives run against paths through them.
TEST_F(FilesEscapeTest, SymlinkSwappedDuring10000ConcurrentCopiesNeverEscapes) {
  Sh("mkdir -p /work/d && printf INSIDE > /work/d/secret && ln -s " + host_dir_ + " /work/l");
  std::string swapper =
      "import ctypes, os\n"
      "libc = ctypes.CDLL(None, use_errno=True)\n"
      "os.chdir('/work')\n"
      "n = 0\n"
      "while os.path.exists('/work/run'):\n"
      "    n += libc.renameat2(-100, b'd', -100, b'l', 2) == 0\n"
      "open('/work/swaps', 'w').write(str(n))\n";
  auto up = Raw("PUT", Files("?path=/work/swap.py"), swapper);
  ASSERT_EQ(up.status, 201) << up.body;
  // One swapper: on two shared cores more would only starve the server.
  Sh("touch /work/run; (python3 /work/swap.py &) >/dev/null 2>&1");
  std::atomic<int> inside{0}, leaked{0}, done{0};
  // HUTCH_FILES_RACE_REQUESTS lowers the count for the lean second run on driver local-tcp,
  // where every request is a TLS connection to the agent (tests/CMakeLists.txt).
  constexpr int kThreads = 4;
  const char* requests = getenv("HUTCH_FILES_RACE_REQUESTS");
  const int kPerThread = (requests ? std::max(4, atoi(requests)) : 10000) / kThreads;
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      auto http = client::HttpClient::Create(server_->url(), server_->token());
      if (!http.ok()) return;
      for (int i = 0; i < kPerThread; ++i) {
        Result<client::HttpResponse> r = Unavailable("not sent");
        switch (i % 4) {
          case 0:
          case 1:
            r = http->Request("GET", Files("?path=/work/d/secret"));
            break;
          case 2:
            r = http->Request("PUT", Files("?path=/work/d/w" + std::to_string(t)), "w",
                              "application/octet-stream");
            break;
          case 3:
            r = http->Request("GET", "/v1/sessions/" + session_ + "/archive?path=/work/d");
            break;
        }
        done.fetch_add(1);
        if (!r.ok()) continue;
        if (r->body.find(kSecret) != std::string::npos) leaked.fetch_add(1);
        if (r->status == 200 && r->body == "INSIDE") inside.fetch_add(1);
      }
    });
  }
  for (auto& th : threads) th.join();
  Sh("rm -f /work/run");
  std::printf("files race: %d requests\n", done.load());
  std::string swaps;
  for (int i = 0; i < 100 && swaps.empty(); ++i) {
    usleep(20000);
    swaps = Api()
                .Exec(session_,
                      json::parse(R"({"command": "cat /work/swaps 2>/dev/null"})").as_object())
                ->stdout_data;
  }
  EXPECT_GT(atol(swaps.c_str()), 1000) << "the swapper barely ran; the race was not exercised";
  EXPECT_EQ(done.load(), kThreads * kPerThread);
  EXPECT_EQ(leaked.load(), 0) << "the host's file was read through the swapped symlink";
  EXPECT_GT(inside.load(), 0) << "no read got through at all; the test proved nothing";
  // TearDown checks that no write landed in the host directory.
}

std::string TarOf(const std::vector<std::pair<files::TarEntry, std::string>>& entries) {
  std::string out;
  for (auto [e, data] : entries) {
    e.size = data.size();
    out += files::EncodeTarHeader(e);
    out += data;
    out.append(files::TarPadding(data.size()), '\0');
  }
  return out + files::TarTrailer();
}
files::TarEntry Entry(std::string path, char type, std::string link = "", uint32_t mode = 0644) {
  files::TarEntry e;
  e.path = std::move(path);
  e.type = type;
  e.link = std::move(link);
  e.mode = mode;
  return e;
}

TEST_F(FilesEscapeTest, MaliciousArchivesAreRefused) {
  std::string up = "../../../../../../../..";
  std::vector<std::pair<std::string, std::string>> cases = {
      {"dotdot", TarOf({{Entry(up + host_dir_ + "/pwned", '0'), "x"}})},
      {"absolute", TarOf({{Entry(host_dir_ + "/pwned", '0'), "x"}})},
      {"through symlink", TarOf({{Entry("l", '2', host_dir_), ""}, {Entry("l/pwned", '0'), "x"}})},
      {"through relative symlink",
       TarOf({{Entry("l", '2', up), ""}, {Entry("l" + host_dir_ + "/pwned", '0'), "x"}})},
      {"device", TarOf({{Entry("sda", '4'), ""}})},
      {"char device", TarOf({{Entry("mem", '3'), ""}})},
      {"fifo", TarOf({{Entry("fifo", '6'), ""}})},
      {"hardlink out", TarOf({{Entry("h", '1', up + host_dir_ + "/secret"), ""}})},
  };
  for (const auto& [what, tar] : cases) {
    SCOPED_TRACE(what);
    auto r = Raw("PUT", "/v1/sessions/" + session_ + "/archive?path=/work/x&parents=true", tar);
    EXPECT_EQ(r.status, 400) << r.body;
    EXPECT_NE(r.body.find("invalid_argument"), std::string::npos) << r.body;
  }
  // Nothing landed outside /work/x inside the sandbox either.
  EXPECT_EQ(Sh("find / -xdev -name pwned 2>/dev/null | wc -l"), "0\n");
  // setuid and setgid bits are dropped.
  auto r = Raw("PUT", "/v1/sessions/" + session_ + "/archive?path=/work/y&parents=true",
               TarOf({{Entry("suid", '0', "", 04755), "#!/bin/sh\n"}}));
  EXPECT_EQ(r.status, 200) << r.body;
  EXPECT_EQ(Sh("stat -c %a /work/y/suid"), "755\n");
}

TEST_F(FilesEscapeTest, TarBombsArePayloadTooLarge) {
  std::vector<std::pair<files::TarEntry, std::string>> many;
  for (int i = 0; i < 200; ++i) many.push_back({Entry("f" + std::to_string(i), '0'), ""});
  auto r =
      Raw("PUT", "/v1/sessions/" + session_ + "/archive?path=/work/b&parents=true&max_entries=100",
          TarOf(many));
  EXPECT_EQ(r.status, 413) << r.body;
  // 256 MiB of zeros compress to a few hundred KiB with zstd.
  files::TarEntry big = Entry("zeros", '0');
  big.size = uint64_t{256} << 20;
  auto z = files::MakeCompressor(files::Compression::kZstd);
  ASSERT_TRUE(z.ok());
  std::string bomb;
  ASSERT_TRUE((*z)->Write(files::EncodeTarHeader(big), &bomb).ok());
  std::string zeros(1 << 20, '\0');
  for (int i = 0; i < 256; ++i) ASSERT_TRUE((*z)->Write(zeros, &bomb).ok());
  ASSERT_TRUE((*z)->Write(files::TarTrailer(), &bomb).ok());
  ASSERT_TRUE((*z)->Finish(&bomb).ok());
  ASSERT_LT(bomb.size(), 4u << 20);
  r = Raw("PUT",
          "/v1/sessions/" + session_ + "/archive?path=/work/b&parents=true&max_bytes=16777216",
          bomb);
  EXPECT_EQ(r.status, 413) << r.body;
  EXPECT_EQ(Sh("test -e /work/b/zeros || echo absent"), "absent\n");
}

TEST_F(FilesEscapeTest, OtherUsersAndNarrowTokensGetNothing) {
  auto admin = Api();
  auto u = admin.Call("POST", "/v1/users", json::value(json::parse(R"({"name":"mallory"})")));
  ASSERT_TRUE(u.ok()) << u.status().ToString();
  auto t =
      admin.Call("POST", "/v1/tokens?owner=mallory",
                 json::value(json::parse(R"({"name":"m","scopes":["files","sessions:read"]})")));
  ASSERT_TRUE(t.ok()) << t.status().ToString();
  auto narrow = admin.Call("POST", "/v1/tokens",
                           json::value(json::parse(R"({"name":"n","scopes":["sessions:read"]})")));
  ASSERT_TRUE(narrow.ok()) << narrow.status().ToString();
  Sh("mkdir -p /work && printf mine > /work/mine");
  auto mallory = client::HttpClient::Create(server_->url(), std::string((*t)["token"].as_string()));
  auto r = mallory->Request("GET", Files("?path=/work/mine"));
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_EQ(r->status, 404) << "another user's session must look missing: " << r->body;
  // Answered before the body is read: the server must still let the client read the answer.
  r = mallory->Request("PUT", Files("?path=/work/mine"), "theirs", "application/octet-stream");
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_EQ(r->status, 404) << r->body;
  auto weak =
      client::HttpClient::Create(server_->url(), std::string((*narrow)["token"].as_string()));
  r = weak->Request("GET", Files("?path=/work/mine"));
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_EQ(r->status, 403) << r->body;
  EXPECT_EQ(Sh("cat /work/mine"), "mine");
}

}  // namespace
}  // namespace hutch
