#include "files/watch.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <fstream>

#include <gtest/gtest.h>

namespace hutch::files {
namespace {

class WatchTest : public ::testing::Test {
 protected:
  void SetUp() override {
    char tmpl[] = "/tmp/hutch-watch-test-XXXXXX";
    ASSERT_NE(mkdtemp(tmpl), nullptr);
    base_ = tmpl;
    ASSERT_EQ(mkdir((base_ + "/root").c_str(), 0755), 0);
    ASSERT_EQ(mkdir((base_ + "/root/w").c_str(), 0755), 0);
    root_.fd = UniqueFd(open((base_ + "/root").c_str(), O_PATH | O_DIRECTORY | O_CLOEXEC));
  }
  void TearDown() override { ASSERT_EQ(system(("rm -rf " + base_).c_str()), 0); }
  std::string Host(const std::string& rel) { return base_ + "/root/" + rel; }

  // Collects events until one of `type` at `path` arrived (or 5 s passed).
  bool WaitFor(Watcher& w, const std::string& type, const std::string& path,
               std::vector<WatchEvent>* all) {
    auto end = std::chrono::steady_clock::now() + std::chrono::seconds(5);
    while (std::chrono::steady_clock::now() < end) {
      for (const auto& e : *all)
        if (e.type == type && e.path == path) return true;
      auto got = w.Wait(100);
      if (!got.ok()) return false;
      all->insert(all->end(), got->begin(), got->end());
    }
    return false;
  }

  std::string base_;
  Root root_;
};

TEST_F(WatchTest, ReportsCreatedModifiedMovedDeletedRecursively) {
  auto w = Watcher::Open(root_, "/w", /*recursive=*/true);
  ASSERT_TRUE(w.ok()) << w.status().ToString();
  std::vector<WatchEvent> ev;
  std::ofstream(Host("w/a")) << "1";
  EXPECT_TRUE(WaitFor(**w, "created", "/w/a", &ev));
  std::ofstream(Host("w/a"), std::ios::app) << "2";
  EXPECT_TRUE(WaitFor(**w, "modified", "/w/a", &ev));
  // A directory and a file made in it at once: the file is reported too.
  ASSERT_EQ(system(("mkdir -p " + Host("w/d/e") + " && echo x > " + Host("w/d/e/f")).c_str()), 0);
  EXPECT_TRUE(WaitFor(**w, "created", "/w/d/e/f", &ev));
  ASSERT_EQ(rename(Host("w/a").c_str(), Host("w/d/b").c_str()), 0);
  EXPECT_TRUE(WaitFor(**w, "moved", "/w/d/b", &ev));
  bool from_ok = false;
  for (const auto& e : ev)
    if (e.type == "moved" && e.from == "/w/a") from_ok = true;
  EXPECT_TRUE(from_ok);
  // Watches follow a renamed directory.
  ASSERT_EQ(rename(Host("w/d").c_str(), Host("w/d2").c_str()), 0);
  EXPECT_TRUE(WaitFor(**w, "moved", "/w/d2", &ev));
  ASSERT_EQ(unlink(Host("w/d2/e/f").c_str()), 0);
  EXPECT_TRUE(WaitFor(**w, "deleted", "/w/d2/e/f", &ev));
  ASSERT_EQ(system(("rm -rf " + Host("w")).c_str()), 0);
  EXPECT_TRUE(WaitFor(**w, "deleted", "/w", &ev));
  EXPECT_TRUE((*w)->gone());
}

TEST_F(WatchTest, NonRecursiveWatchIgnoresSubdirectoriesAndCancelWakes) {
  ASSERT_EQ(mkdir(Host("w/sub").c_str(), 0755), 0);
  auto w = Watcher::Open(root_, "w", /*recursive=*/false);
  ASSERT_TRUE(w.ok());
  std::ofstream(Host("w/sub/x")) << "1";
  auto got = (*w)->Wait(300);
  ASSERT_TRUE(got.ok());
  EXPECT_TRUE(got->empty());
  (*w)->Cancel();
  auto t0 = std::chrono::steady_clock::now();
  got = (*w)->Wait(10000);
  EXPECT_LT(std::chrono::steady_clock::now() - t0, std::chrono::seconds(5));
}

TEST_F(WatchTest, WatchThroughASymlinkStaysInsideTheRoot) {
  ASSERT_EQ(mkdir((base_ + "/outside").c_str(), 0755), 0);
  ASSERT_EQ(symlink((base_ + "/outside").c_str(), Host("link").c_str()), 0);
  auto w = Watcher::Open(root_, "/link", true);
  EXPECT_EQ(w.status().code(), Code::kNotFound) << w.status().ToString();
  EXPECT_EQ(Watcher::Open(root_, "/nope", true).status().code(), Code::kNotFound);
}

}  // namespace
}  // namespace hutch::files
