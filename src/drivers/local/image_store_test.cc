#include "drivers/local/image_store.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/xattr.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <cstdlib>
#include <fstream>

#include "files/tar.h"
#include "sandbox/fs.h"

namespace hutch::drivers::local {
namespace {

std::string Entry(const std::string& path, char type, const std::string& data = "",
                  const std::string& link = "") {
  files::TarEntry e;
  e.path = path;
  e.type = type;
  e.mode = type == '5' ? 0755 : 0644;
  e.size = type == '0' ? data.size() : 0;
  e.link = link;
  return files::EncodeTarHeader(e) + data + std::string(files::TarPadding(e.size), '\0');
}

class ImageStoreTest : public ::testing::Test {
 protected:
  void SetUp() override {
    if (geteuid() != 0) GTEST_SKIP() << "needs root (chown, mknod, trusted.* xattrs)";
    char tmpl[] = "/tmp/hutch-imgstore-XXXXXX";
    ASSERT_TRUE(mkdtemp(tmpl));
    dir_ = tmpl;
    auto s = ImageStore::Open(dir_ + "/images");
    ASSERT_TRUE(s.ok()) << s.status().ToString();
    store_ = std::move(*s);
  }
  void TearDown() override {
    if (!dir_.empty()) (void)sandbox::RemoveTree(dir_);
  }
  Result<ImageRecord> ImportTar(const std::string& name, const std::string& tar) {
    std::string path = dir_ + "/in.tar";
    std::ofstream(path, std::ios::binary) << tar << files::TarTrailer();
    return store_->Import(name, "usr_test", path, "rootfs", nullptr);
  }
  std::string dir_;
  std::unique_ptr<ImageStore> store_;
};

TEST_F(ImageStoreTest, EntriesThatClimbOutAreRefusedAndNothingIsKept) {
  auto r = ImportTar("evil", Entry("a/", '5') + Entry("a/../../escaped", '0', "x"));
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), Code::kInvalidArgument) << r.status().ToString();
  EXPECT_FALSE(sandbox::PathExists(dir_ + "/images/escaped"));
  EXPECT_FALSE(sandbox::PathExists(dir_ + "/escaped"));
  EXPECT_EQ(store_->Get("evil").status().code(), Code::kNotFound);
  // Through a symlink an earlier entry planted: refused too.
  r = ImportTar("evil2", Entry("link", '2', "", "/tmp") + Entry("link/planted", '0', "x"));
  ASSERT_FALSE(r.ok());
  EXPECT_FALSE(sandbox::PathExists("/tmp/planted"));
}

TEST_F(ImageStoreTest, WhiteoutsAndOpaqueMarkersBecomeOverlayLowerFormat) {
  auto r = ImportTar("w", Entry("d/", '5') + Entry("d/.wh.gone", '0') +
                              Entry("d/.wh..wh..opq", '0') + Entry("d/kept", '0', "k"));
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  std::string root = store_->LayerDir(r->layers[0].digest) + "/root";
  struct stat st;
  ASSERT_EQ(lstat((root + "/d/gone").c_str(), &st), 0);
  EXPECT_TRUE(S_ISCHR(st.st_mode));
  EXPECT_EQ(st.st_rdev, makedev(0, 0));
  EXPECT_FALSE(sandbox::PathExists(root + "/d/.wh.gone"));
  EXPECT_FALSE(sandbox::PathExists(root + "/d/.wh..wh..opq"));
  for (const char* attr : {"trusted.overlay.opaque", "user.overlay.opaque"}) {
    char v[4] = {};
    EXPECT_EQ(getxattr((root + "/d").c_str(), attr, v, sizeof v), 1) << attr;
    EXPECT_EQ(v[0], 'y') << attr;
  }
  auto dirs = store_->VerifiedLayerDirs("w");
  ASSERT_TRUE(dirs.ok()) << dirs.status().ToString();
  // A chmod changes the layer's ctime: the stamp no longer matches.
  ASSERT_EQ(chmod((root + "/d/kept").c_str(), 0600), 0);
  EXPECT_EQ(store_->VerifiedLayerDirs("w").status().code(), Code::kConflict);
}

TEST_F(ImageStoreTest, AnEditedManifestIsRefused) {
  ASSERT_TRUE(ImportTar("m", Entry("etc/", '5')).ok());
  std::string path = dir_ + "/images/manifests/m.json";
  auto text = sandbox::ReadFileToString(path);
  ASSERT_TRUE(text.ok());
  std::string edited = *text;
  edited.replace(edited.find("usr_test"), 8, "usr_evil");
  ASSERT_TRUE(sandbox::WriteExistingFile(path, edited).ok());
  auto m = store_->Get("m");
  ASSERT_FALSE(m.ok());
  EXPECT_EQ(m.status().code(), Code::kConflict);
  EXPECT_NE(m.status().message().find("signature"), std::string::npos) << m.status().ToString();
}

}  // namespace
}  // namespace hutch::drivers::local
