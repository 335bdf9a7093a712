#include "files/archive.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <unistd.h>

#include <cstdlib>
#include <fstream>
#include <sstream>

#include <gtest/gtest.h>

#include "files/codec.h"
#include "files/ops.h"
#include "files/tar.h"

namespace hutch::files {
namespace {

std::string ReadHostFile(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}
void WriteHostFile(const std::string& path, const std::string& data) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out << data;
}
int Sh(const std::string& cmd) { return system(cmd.c_str()); }

class ArchiveTest : public ::testing::Test {
 protected:
  void SetUp() override {
    char tmpl[] = "/tmp/hutch-archive-test-XXXXXX";
    ASSERT_NE(mkdtemp(tmpl), nullptr);
    base_ = tmpl;
    root_dir_ = base_ + "/root";
    ASSERT_EQ(mkdir(root_dir_.c_str(), 0755), 0);
    ASSERT_EQ(mkdir((base_ + "/outside").c_str(), 0755), 0);
    root_.fd = UniqueFd(open(root_dir_.c_str(), O_PATH | O_DIRECTORY | O_CLOEXEC));
    ASSERT_TRUE(root_.fd.valid());
  }
  void TearDown() override { ASSERT_EQ(Sh("rm -rf '" + base_ + "'"), 0); }
  std::string Host(const std::string& rel) { return root_dir_ + "/" + rel; }

  Result<std::string> TarOf(std::string_view path) {
    ASSIGN_OR_RETURN(auto t, TreeTar::Open(root_, path));
    std::string all;
    for (;;) {
      ASSIGN_OR_RETURN(auto piece, t->Next(100000));
      if (!piece) break;
      all += *piece;
    }
    return all;
  }

  // Extracts `tar` (fed in odd-sized pieces) below `dest`.
  Status Extract(const std::string& tar, const std::string& dest, ExtractLimits limits = {}) {
    ASSIGN_OR_RETURN(UniqueFd d, OpenDir(root_, dest, true));
    Extractor ex(root_, std::move(d), dest, limits);
    TarReader reader(ex);
    Decompressor dec([&](std::string_view p) { return reader.Feed(p); });
    for (size_t i = 0; i < tar.size(); i += 777)
      RETURN_IF_ERROR(dec.Feed(std::string_view(tar).substr(i, 777)));
    RETURN_IF_ERROR(dec.Finish());
    RETURN_IF_ERROR(reader.Finish());
    return ex.Finish();
  }

  std::string base_, root_dir_;
  Root root_;
};

TEST_F(ArchiveTest, RoundTripKeepsContentModesSymlinksAndEmptyDirs) {
  ASSERT_EQ(Sh("mkdir -p " + Host("src/empty") + " " + Host("src/sub/deeper")), 0);
  WriteHostFile(Host("src/a.txt"), "alpha");
  std::string big(3 << 20, '\0');
  for (size_t i = 0; i < big.size(); ++i) big[i] = static_cast<char>(i * 7919 % 251);
  WriteHostFile(Host("src/sub/big.bin"), big);
  WriteHostFile(Host("src/sub/deeper/x"), "");
  ASSERT_EQ(chmod(Host("src/a.txt").c_str(), 0751), 0);
  ASSERT_EQ(chmod(Host("src/empty").c_str(), 0700), 0);
  ASSERT_EQ(symlink("sub/big.bin", Host("src/link").c_str()), 0);
  ASSERT_EQ(symlink("/etc/passwd", Host("src/abs").c_str()), 0);
  std::string longname(120, 'n');
  ASSERT_EQ(Sh("mkdir -p " + Host("src/" + std::string(90, 'd') + "/" + std::string(90, 'e'))), 0);
  WriteHostFile(Host("src/" + std::string(90, 'd') + "/" + std::string(90, 'e') + "/" + longname),
                "long");
  for (Compression c : {Compression::kNone, Compression::kGzip, Compression::kZstd}) {
    SCOPED_TRACE(ContentType(c));
    auto tar = TarOf("/src");
    ASSERT_TRUE(tar.ok()) << tar.status().ToString();
    std::string payload = *tar;
    if (c != Compression::kNone) {
      auto z = MakeCompressor(c);
      ASSERT_TRUE(z.ok());
      payload.clear();
      ASSERT_TRUE((*z)->Write(*tar, &payload).ok());
      ASSERT_TRUE((*z)->Finish(&payload).ok());
    }
    ASSERT_EQ(Sh("rm -rf " + Host("dst")), 0);
    Status st = Extract(payload, "/dst");
    ASSERT_TRUE(st.ok()) << st.ToString();
    EXPECT_EQ(Sh("diff -r --no-dereference " + Host("src") + " " + Host("dst/src")), 0);
    EXPECT_EQ(ReadHostFile(Host("dst/src/sub/big.bin")), big);
    struct stat st1;
    ASSERT_EQ(lstat(Host("dst/src/a.txt").c_str(), &st1), 0);
    EXPECT_EQ(st1.st_mode & 07777, 0751u);
    ASSERT_EQ(lstat(Host("dst/src/empty").c_str(), &st1), 0);
    EXPECT_EQ(st1.st_mode & 07777, 0700u);
    char buf[64] = {};
    ASSERT_GT(readlink(Host("dst/src/abs").c_str(), buf, sizeof buf), 0);
    EXPECT_STREQ(buf, "/etc/passwd");
  }
}

TEST_F(ArchiveTest, GnuTarReadsOurArchivesAndWeReadItsPaxAndLongNames) {
  if (Sh("command -v tar >/dev/null") != 0) GTEST_SKIP() << "no tar";
  std::string deep = "src/" + std::string(150, 'p') + "/" + std::string(200, 'q');
  ASSERT_EQ(Sh("mkdir -p " + Host(deep)), 0);
  WriteHostFile(Host(deep + "/f"), "deep");
  ASSERT_EQ(symlink(std::string(300, 't').c_str(), Host("src/longlink").c_str()), 0);
  auto tar = TarOf("/src");
  ASSERT_TRUE(tar.ok());
  WriteHostFile(base_ + "/ours.tar", *tar);
  ASSERT_EQ(Sh("mkdir -p " + base_ + "/gnu && tar -xf " + base_ + "/ours.tar -C " + base_ + "/gnu"),
            0);
  EXPECT_EQ(ReadHostFile(base_ + "/gnu/" + deep + "/f"), "deep");
  for (std::string format : {"gnu", "pax", "ustar"}) {
    if (format == "ustar") continue;  // ustar cannot hold these names
    SCOPED_TRACE(format);
    std::string file = base_ + "/" + format + ".tar";
    ASSERT_EQ(Sh("tar --format=" + format + " -cf " + file + " -C " + root_dir_ + " src"), 0);
    ASSERT_EQ(Sh("rm -rf " + Host("x")), 0);
    Status st = Extract(ReadHostFile(file), "/x");
    ASSERT_TRUE(st.ok()) << st.ToString();
    EXPECT_EQ(ReadHostFile(Host("x/" + deep + "/f")), "deep");
    char buf[400] = {};
    ASSERT_EQ(readlink(Host("x/src/longlink").c_str(), buf, sizeof buf), 300);
  }
}

// Builds a tar of handmade entries.
std::string MakeTar(const std::vector<std::pair<TarEntry, std::string>>& entries) {
  std::string out;
  for (auto [e, data] : entries) {
    e.size = data.size();
    out += EncodeTarHeader(e);
    out += data;
    out.append(TarPadding(data.size()), '\0');
  }
  return out + TarTrailer();
}
TarEntry E(std::string path, char type, std::string link = "", uint32_t mode = 0644) {
  TarEntry e;
  e.path = std::move(path);
  e.type = type;
  e.link = std::move(link);
  e.mode = mode;
  return e;
}

TEST_F(ArchiveTest, MaliciousEntriesAreRefusedAndNothingOutsideIsTouched) {
  std::string outside = base_ + "/outside";
  struct Case {
    const char* what;
    std::string tar;
  };
  std::vector<Case> cases = {
      {"dotdot", MakeTar({{E("../outside/pwned", '0'), "x"}})},
      {"nested dotdot", MakeTar({{E("a/../../outside/pwned", '0'), "x"}})},
      {"absolute", MakeTar({{E(outside + "/pwned", '0'), "x"}})},
      {"through symlink", MakeTar({{E("l", '2', outside), ""}, {E("l/pwned", '0'), "x"}})},
      {"through relative symlink",
       MakeTar({{E("l", '2', "../../outside"), ""}, {E("l/pwned", '0'), "x"}})},
      {"char device", MakeTar({{E("dev", '3'), ""}})},
      {"block device", MakeTar({{E("blk", '4'), ""}})},
      {"hardlink out", MakeTar({{E("h", '1', "../outside/secret"), ""}})},
      {"hardlink through symlink",
       MakeTar({{E("l", '2', outside), ""}, {E("h", '1', "l/secret"), ""}})},
  };
  WriteHostFile(outside + "/secret", "OUTSIDE");
  for (const Case& c : cases) {
    SCOPED_TRACE(c.what);
    ASSERT_EQ(Sh("rm -rf " + Host("dst")), 0);
    Status st = Extract(c.tar, "/dst");
    EXPECT_EQ(st.code(), Code::kInvalidArgument) << st.ToString();
    EXPECT_NE(access((outside + "/pwned").c_str(), F_OK), 0);
    EXPECT_EQ(ReadHostFile(outside + "/secret"), "OUTSIDE");
  }
  // A symlink entry pointing out is only a symlink: created, never followed.
  ASSERT_TRUE(Extract(MakeTar({{E("ok", '2', outside + "/secret"), ""}}), "/dst").ok());
  EXPECT_EQ(ReadHostFile(outside + "/secret"), "OUTSIDE");
}

TEST_F(ArchiveTest, SetuidBitsAreDropped) {
  ASSERT_TRUE(
      Extract(MakeTar({{E("suid", '0', "", 06755), "#!/bin/sh\n"}, {E("d", '5', "", 02775), ""}}),
              "/dst")
          .ok());
  struct stat st;
  ASSERT_EQ(stat(Host("dst/suid").c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 07777, 0755u);
  ASSERT_EQ(stat(Host("dst/d").c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 07777, 0775u);
}

TEST_F(ArchiveTest, TarBombsArePayloadTooLarge) {
  std::vector<std::pair<TarEntry, std::string>> many;
  for (int i = 0; i < 50; ++i) many.push_back({E("f" + std::to_string(i), '0'), "x"});
  ExtractLimits limits;
  limits.max_entries = 20;
  EXPECT_EQ(Extract(MakeTar(many), "/a", limits).code(), Code::kPayloadTooLarge);
  // 64 MiB of zeros gzip to ~64 KiB: the limit counts what comes out.
  TarEntry big = E("big", '0');
  big.size = 64 << 20;
  std::string tar = EncodeTarHeader(big);
  auto z = MakeCompressor(Compression::kGzip);
  ASSERT_TRUE(z.ok());
  std::string gz;
  ASSERT_TRUE((*z)->Write(tar, &gz).ok());
  std::string zeros(1 << 20, '\0');
  for (int i = 0; i < 64; ++i) ASSERT_TRUE((*z)->Write(zeros, &gz).ok());
  ASSERT_TRUE((*z)->Write(TarTrailer(), &gz).ok());
  ASSERT_TRUE((*z)->Finish(&gz).ok());
  EXPECT_LT(gz.size(), 1u << 20);
  limits = {};
  limits.max_bytes = 8 << 20;
  EXPECT_EQ(Extract(gz, "/b", limits).code(), Code::kPayloadTooLarge);
  EXPECT_NE(access(Host("b/big").c_str(), F_OK), 0) << "the partial file stayed";
}

TEST_F(ArchiveTest, CorruptArchivesAreInvalidArgument) {
  std::string tar = MakeTar({{E("f", '0'), "hello"}});
  std::string bad = tar;
  bad[0] ^= 1;  // checksum no longer matches
  EXPECT_EQ(Extract(bad, "/c").code(), Code::kInvalidArgument);
  EXPECT_EQ(Extract(tar.substr(0, 600), "/c").code(), Code::kInvalidArgument);
  EXPECT_EQ(Extract(std::string("\x1f\x8b garbage that is not gzip", 26), "/c").code(),
            Code::kInvalidArgument);
}

}  // namespace
}  // namespace hutch::files
