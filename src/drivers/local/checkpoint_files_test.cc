#include "drivers/local/checkpoint_files.h"

#include <fcntl.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <cstdlib>
#include <string>

#include "common/unique_fd.h"

namespace hutch::drivers::local {
namespace {

class CheckpointFilesTest : public ::testing::Test {
 protected:
  void SetUp() override {
    char tmpl[] = "/tmp/hutch-ckptfiles-XXXXXX";
    ASSERT_TRUE(mkdtemp(tmpl));
    dir_ = tmpl;
  }
  void TearDown() override { (void)std::system(("rm -rf " + dir_).c_str()); }
  // A sparse file of `size` with `data` written at each offset of `at`.
  UniqueFd Sparse(const std::string& name, off_t size, std::vector<off_t> at,
                  const std::string& data) {
    UniqueFd fd(open((dir_ + "/" + name).c_str(), O_CREAT | O_RDWR | O_CLOEXEC, 0600));
    EXPECT_TRUE(fd);
    EXPECT_EQ(ftruncate(fd.get(), size), 0);
    for (off_t o : at)
      EXPECT_EQ(pwrite(fd.get(), data.data(), data.size(), o), ssize_t(data.size()));
    return fd;
  }
  std::string dir_;
};

CheckpointManifest Manifest() {
  CheckpointManifest m;
  m.session_id = "ses_abc";
  m.name = "first";
  m.size_bytes = 1 << 30;
  m.digest = {std::string(64, 'a'), 4096, 1};
  m.created_at = FromUnixMillis(1790000000000);
  m.freeze_ms = 3;
  m.duration_ms = 9;
  return m;
}

TEST_F(CheckpointFilesTest, ManifestRoundTripsWithItsKey) {
  std::string key(32, 'k');
  auto m = DecodeManifest(EncodeManifest(Manifest(), key), key);
  ASSERT_TRUE(m.ok()) << m.status().ToString();
  EXPECT_EQ(m->session_id, "ses_abc");
  EXPECT_EQ(m->digest.sha256, std::string(64, 'a'));
  EXPECT_EQ(m->size_bytes, 1 << 30);
  EXPECT_EQ(m->created_at, FromUnixMillis(1790000000000));
}

TEST_F(CheckpointFilesTest, AChangedFieldOrAnotherKeyFailsTheMac) {
  std::string key(32, 'k');
  std::string text = EncodeManifest(Manifest(), key);
  EXPECT_EQ(DecodeManifest(text, std::string(32, 'x')).status().code(), Code::kConflict);
  std::string changed = text;
  changed.replace(changed.find("\"data_bytes\":4096"), 17, "\"data_bytes\":4097");
  auto m = DecodeManifest(changed, key);
  EXPECT_EQ(m.status().code(), Code::kConflict);
  EXPECT_NE(m.status().message().find("integrity"), std::string::npos);
  EXPECT_EQ(DecodeManifest("{not json", key).status().code(), Code::kConflict);
  EXPECT_EQ(DecodeManifest("{}", key).status().code(), Code::kConflict);
}

TEST_F(CheckpointFilesTest, SparseCopyKeepsHolesAndTheDigest) {
  UniqueFd src = Sparse("src", 64 << 20, {0, 8 << 20, 40 << 20}, std::string(8192, 'z'));
  UniqueFd dst(open((dir_ + "/dst").c_str(), O_CREAT | O_RDWR | O_CLOEXEC, 0600));
  ASSERT_TRUE(CopyImage(src.get(), dst.get(), "src").ok());
  auto a = DigestImage(src.get(), "src");
  auto b = DigestImage(dst.get(), "dst");
  ASSERT_TRUE(a.ok() && b.ok());
  EXPECT_EQ(a->sha256, b->sha256);
  EXPECT_EQ(b->data_bytes, a->data_bytes);
  EXPECT_LT(b->data_bytes, 1 << 20);  // holes stayed holes
  EXPECT_EQ(lseek(dst.get(), 0, SEEK_END), 64 << 20);
}

TEST_F(CheckpointFilesTest, ABytesChangeOrDataInAHoleChangesTheDigest) {
  UniqueFd f = Sparse("f", 16 << 20, {0}, std::string(4096, 'a'));
  auto before = DigestImage(f.get(), "f");
  ASSERT_TRUE(before.ok());
  ASSERT_EQ(pwrite(f.get(), "b", 1, 100), 1);
  auto changed = DigestImage(f.get(), "f");
  ASSERT_TRUE(changed.ok());
  EXPECT_NE(changed->sha256, before->sha256);
  ASSERT_EQ(pwrite(f.get(), "a", 1, 100), 1);
  EXPECT_EQ(DigestImage(f.get(), "f")->sha256, before->sha256);
  // Zeros written into a hole read the same as the hole, but make an extent: still a change.
  std::string zeros(4096, '\0');
  ASSERT_EQ(pwrite(f.get(), zeros.data(), zeros.size(), 8 << 20), 4096);
  EXPECT_NE(DigestImage(f.get(), "f")->sha256, before->sha256);
}

TEST_F(CheckpointFilesTest, NamesAreDnsLabelsOrInternalOnes) {
  EXPECT_TRUE(IsValidCheckpointFileName("before-upgrade"));
  EXPECT_TRUE(IsValidCheckpointFileName(".fork123"));
  for (const char* bad : {"", ".", "..", "-a", "a-", "A", "a/b", "../x", "a.b", "a b"})
    EXPECT_FALSE(IsValidCheckpointFileName(bad)) << bad;
  EXPECT_FALSE(IsValidCheckpointFileName(std::string(64, 'a')));
}

TEST_F(CheckpointFilesTest, TheKeyIsMadeOnceAndKept) {
  auto a = LoadOrMakeCheckpointKey(dir_ + "/ck");
  auto b = LoadOrMakeCheckpointKey(dir_ + "/ck");
  ASSERT_TRUE(a.ok() && b.ok());
  EXPECT_EQ(a->size(), 32u);
  EXPECT_EQ(*a, *b);
}

}  // namespace
}  // namespace hutch::drivers::local
