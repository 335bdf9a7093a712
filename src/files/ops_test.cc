#include "files/ops.h"

#include <fcntl.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <unistd.h>

#include <atomic>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <sstream>
#include <string>
#include <thread>

#include <gtest/gtest.h>

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

int CountFds() {
  int n = 0;
  for (int fd = 0; fd < 4096; ++fd)
    if (fcntl(fd, F_GETFD) >= 0) ++n;
  return n;
}

ReadFn FromString(std::string data) {
  auto pos = std::make_shared<size_t>(0);
  auto buf = std::make_shared<std::string>(std::move(data));
  return [pos, buf](char* out, size_t n) -> Result<size_t> {
    size_t k = std::min(n, buf->size() - *pos);
    memcpy(out, buf->data() + *pos, k);
    *pos += k;
    return k;
  };
}

Result<std::string> ReadAll(const Root& root, std::string_view path) {
  ASSIGN_OR_RETURN(OpenedFile f, OpenForRead(root, path));
  std::string out;
  char buf[4096];
  ssize_t n;
  while ((n = read(f.fd.get(), buf, sizeof buf)) > 0) out.append(buf, static_cast<size_t>(n));
  return out;
}

// A temp directory standing in for a sandbox's root, and an "outside" directory beside it
// holding what must never be read or written through the root.
class FilesTest : public ::testing::Test {
 protected:
  void SetUp() override {
    char tmpl[] = "/tmp/hutch-files-test-XXXXXX";
    ASSERT_NE(mkdtemp(tmpl), nullptr);
    base_ = tmpl;
    root_dir_ = base_ + "/root";
    outside_ = base_ + "/outside";
    ASSERT_EQ(mkdir(root_dir_.c_str(), 0755), 0);
    ASSERT_EQ(mkdir(outside_.c_str(), 0755), 0);
    WriteHostFile(outside_ + "/secret", "OUTSIDE");
    root_.fd = UniqueFd(open(root_dir_.c_str(), O_PATH | O_DIRECTORY | O_CLOEXEC));
    ASSERT_TRUE(root_.fd.valid());
    fds_before_ = CountFds();
  }
  void TearDown() override {
    EXPECT_EQ(CountFds(), fds_before_) << "fd leak";
    root_.fd.Reset();
    std::string cmd = "rm -rf '" + base_ + "'";
    ASSERT_EQ(system(cmd.c_str()), 0);
  }
  std::string Host(const std::string& rel) { return root_dir_ + "/" + rel; }

  std::string base_, root_dir_, outside_;
  Root root_;
  int fds_before_ = 0;
};

TEST_F(FilesTest, CheckPathRefusesNulEmptyAndOverlongPaths) {
  EXPECT_EQ(CheckPath("").code(), Code::kInvalidArgument);
  EXPECT_EQ(CheckPath(std::string("a\0b", 3)).code(), Code::kInvalidArgument);
  EXPECT_EQ(CheckPath(std::string(5000, 'a')).code(), Code::kInvalidArgument);
  EXPECT_EQ(CheckPath("/" + std::string(256, 'a')).code(), Code::kInvalidArgument);
  EXPECT_TRUE(CheckPath("/a/../b").ok());
}

TEST_F(FilesTest, SplitParentRefusesTheRootAndDotNames) {
  EXPECT_FALSE(SplitParent("/").ok());
  EXPECT_FALSE(SplitParent("/a/..").ok());
  EXPECT_FALSE(SplitParent("a/.").ok());
  auto pn = SplitParent("/a/b/");
  ASSERT_TRUE(pn.ok());
  EXPECT_EQ(pn->parent, "/a");
  EXPECT_EQ(pn->name, "b");
}

TEST_F(FilesTest, DotDotAndAbsolutePathsStayInsideTheRoot) {
  WriteHostFile(Host("secret"), "INSIDE");
  for (std::string p : {"../outside/secret", "/../../outside/secret", "a/../../outside/secret"}) {
    auto r = ReadAll(root_, p);
    EXPECT_FALSE(r.ok() && *r == "OUTSIDE") << p;
  }
  // ".." at the root is the root itself.
  auto r = ReadAll(root_, "/../../../secret");
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_EQ(*r, "INSIDE");
}

TEST_F(FilesTest, AbsoluteSymlinksResolveInsideTheRoot) {
  ASSERT_EQ(symlink(outside_.c_str(), Host("link").c_str()), 0);
  ASSERT_EQ(symlink((outside_ + "/secret").c_str(), Host("filelink").c_str()), 0);
  ASSERT_EQ(symlink("../../../../outside", Host("rel").c_str()), 0);
  for (std::string p : {"link/secret", "filelink", "rel/secret"}) {
    auto r = ReadAll(root_, p);
    EXPECT_FALSE(r.ok()) << p;
    if (!r.ok()) {
      EXPECT_EQ(r.status().code(), Code::kNotFound) << r.status().ToString();
    }
  }
  // Writing through the symlink creates nothing outside.
  auto w = WriteFile(root_, "link/new", {}, FromString("x"));
  EXPECT_FALSE(w.ok());
  EXPECT_NE(access((outside_ + "/new").c_str(), F_OK), 0);
  EXPECT_EQ(ReadHostFile(outside_ + "/secret"), "OUTSIDE");
  // A symlink whose target exists inside the root (as the sandbox sees it) works.
  ASSERT_EQ(system(("mkdir -p '" + root_dir_ + outside_ + "'").c_str()), 0);
  WriteHostFile(root_dir_ + outside_ + "/secret", "INSIDE");
  auto r = ReadAll(root_, "link/secret");
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_EQ(*r, "INSIDE");
}

TEST_F(FilesTest, MagicLinksAndProcAreRefused) {
  if (geteuid() != 0) GTEST_SKIP() << "mounting proc needs root";
  ASSERT_EQ(mkdir(Host("proc").c_str(), 0555), 0);
  ASSERT_EQ(mount("proc", Host("proc").c_str(), "proc", MS_NOSUID | MS_NODEV | MS_NOEXEC, nullptr),
            0);
  for (std::string p : {"/proc/self/root/etc/hostname", "/proc/1/root/etc/passwd", "/proc/self/cwd",
                        "/proc/kcore", "/proc/sysrq-trigger"}) {
    auto r = OpenForRead(root_, p);
    EXPECT_FALSE(r.ok()) << p;
  }
  auto l = List(root_, "/proc", 1, 10);
  EXPECT_EQ(l.status().code(), Code::kPermissionDenied);
  auto w = WriteFile(root_, "/proc/sysrq-trigger", {}, FromString("h"));
  EXPECT_FALSE(w.ok());
  ASSERT_EQ(umount2(Host("proc").c_str(), MNT_DETACH), 0);
}

TEST_F(FilesTest, WriteFileIsAtomicAndKeepsModeOfReplacedFile) {
  WriteOptions o;
  o.mode = 0640;
  o.parents = true;
  auto w = WriteFile(root_, "/a/b/c.txt", o, FromString("hello"));
  ASSERT_TRUE(w.ok()) << w.status().ToString();
  EXPECT_TRUE(w->created);
  EXPECT_EQ(ReadHostFile(Host("a/b/c.txt")), "hello");
  struct stat st;
  ASSERT_EQ(stat(Host("a/b/c.txt").c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 07777, 0640u);
  auto w2 = WriteFile(root_, "/a/b/c.txt", {}, FromString("bye"));
  ASSERT_TRUE(w2.ok());
  EXPECT_FALSE(w2->created);
  ASSERT_EQ(stat(Host("a/b/c.txt").c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 07777, 0640u);
  EXPECT_EQ(ReadHostFile(Host("a/b/c.txt")), "bye");
  // Without parents a missing directory is 404; a directory as target 409.
  EXPECT_EQ(WriteFile(root_, "/x/y", {}, FromString("")).status().code(), Code::kNotFound);
  EXPECT_EQ(WriteFile(root_, "/a/b", {}, FromString("")).status().code(), Code::kConflict);
  // A file where a directory is needed: 409.
  EXPECT_EQ(WriteFile(root_, "/a/b/c.txt/d", {}, FromString("")).status().code(), Code::kConflict);
  o.mode = 04755;
  EXPECT_EQ(WriteFile(root_, "/s", o, FromString("")).status().code(), Code::kInvalidArgument);
}

TEST_F(FilesTest, FailedWriteLeavesNoTempFileAndTheTargetUntouched) {
  WriteHostFile(Host("t"), "old");
  int calls = 0;
  auto w = WriteFile(root_, "/t", {}, [&](char* buf, size_t n) -> Result<size_t> {
    if (++calls > 3) return Unavailable("client went away");
    memset(buf, 'x', n);
    return n;
  });
  EXPECT_EQ(w.status().code(), Code::kUnavailable);
  EXPECT_EQ(ReadHostFile(Host("t")), "old");
  auto l = List(root_, "/", 1, 100);
  ASSERT_TRUE(l.ok());
  ASSERT_EQ(l->entries.size(), 1u);
  EXPECT_EQ(l->entries[0].name, "t");
}

TEST_F(FilesTest, FullDiskAnswers507AndLeavesNoPartialFile) {
  if (geteuid() != 0) GTEST_SKIP() << "mounting a tmpfs needs root";
  ASSERT_EQ(mkdir(Host("small").c_str(), 0755), 0);
  ASSERT_EQ(mount("tmpfs", Host("small").c_str(), "tmpfs", 0, "size=1m"), 0);
  WriteHostFile(Host("small/keep"), "old");
  std::string big(3 << 20, 'z');
  auto w = WriteFile(root_, "/small/keep", {}, FromString(big));
  EXPECT_EQ(w.status().code(), Code::kInsufficientStorage) << w.status().ToString();
  EXPECT_EQ(ReadHostFile(Host("small/keep")), "old");
  auto w2 = WriteFile(root_, "/small/new", {}, FromString(big));
  EXPECT_EQ(w2.status().code(), Code::kInsufficientStorage);
  auto l = List(root_, "/small", 1, 100);
  ASSERT_TRUE(l.ok());
  ASSERT_EQ(l->entries.size(), 1u) << "a temp file was left behind";
  EXPECT_EQ(l->entries[0].name, "keep");
  ASSERT_EQ(umount2(Host("small").c_str(), MNT_DETACH), 0);
}

TEST_F(FilesTest, ListStatRemoveMkdirMove) {
  ASSERT_TRUE(MakeDir(root_, "/d/e/f", 0750, true).ok());
  EXPECT_EQ(MakeDir(root_, "/d", 0755, false).code(), Code::kConflict);
  EXPECT_TRUE(MakeDir(root_, "/d", 0755, true).ok());
  WriteHostFile(Host("d/file"), "12345");
  ASSERT_EQ(symlink("file", Host("d/sl").c_str()), 0);
  auto l = List(root_, "/d", 3, 100);
  ASSERT_TRUE(l.ok()) << l.status().ToString();
  std::vector<std::string> paths;
  for (auto& e : l->entries) paths.push_back(e.path);
  EXPECT_EQ(paths, (std::vector<std::string>{"/d/e", "/d/e/f", "/d/file", "/d/sl"}));
  EXPECT_EQ(l->entries[2].size, 5u);
  EXPECT_EQ(l->entries[3].type, FileType::kSymlink);
  EXPECT_EQ(l->entries[3].target, "file");
  EXPECT_EQ(l->entries[1].mode, 0750u);
  auto st = Stat(root_, "/d/sl");
  ASSERT_TRUE(st.ok());
  EXPECT_EQ(st->type, FileType::kSymlink);
  EXPECT_EQ(List(root_, "/d/file", 1, 10).status().code(), Code::kConflict);
  EXPECT_EQ(Stat(root_, "/nope").status().code(), Code::kNotFound);

  EXPECT_TRUE(Move(root_, "/d/file", "/d/e/moved", false).ok());
  EXPECT_EQ(ReadHostFile(Host("d/e/moved")), "12345");
  WriteHostFile(Host("d/other"), "o");
  EXPECT_EQ(Move(root_, "/d/other", "/d/e/moved", false).code(), Code::kConflict);
  EXPECT_TRUE(Move(root_, "/d/other", "/d/e/moved", true).ok());
  EXPECT_EQ(Move(root_, "/", "/x", true).code(), Code::kInvalidArgument);

  EXPECT_EQ(Remove(root_, "/d", false).code(), Code::kConflict);
  EXPECT_TRUE(Remove(root_, "/d/sl", false).ok());
  EXPECT_TRUE(Remove(root_, "/d", true).ok());
  EXPECT_NE(access(Host("d").c_str(), F_OK), 0);
  EXPECT_EQ(Remove(root_, "/d", true).code(), Code::kNotFound);
  EXPECT_EQ(Remove(root_, "/", true).code(), Code::kInvalidArgument);
}

TEST_F(FilesTest, RecursiveRemoveDoesNotFollowSymlinksOut) {
  ASSERT_EQ(mkdir(Host("d").c_str(), 0755), 0);
  ASSERT_EQ(symlink(outside_.c_str(), Host("d/out").c_str()), 0);
  ASSERT_TRUE(Remove(root_, "/d", true).ok());
  EXPECT_EQ(ReadHostFile(outside_ + "/secret"), "OUTSIDE");
}

// The rename-exchange race of docker cp (CVE-2018-15664): while the reads and writes run, a
// thread swaps a directory and a symlink to the host with RENAME_EXCHANGE as fast as it can.
// No read may ever see the host's file and no write may ever land on the host.
TEST_F(FilesTest, SymlinkSwappedMidOperationNeverEscapes) {
  ASSERT_EQ(mkdir(Host("d").c_str(), 0755), 0);
  WriteHostFile(Host("d/secret"), "INSIDE");
  ASSERT_EQ(symlink(outside_.c_str(), Host("l").c_str()), 0);
  UniqueFd dir(open(root_dir_.c_str(), O_PATH | O_DIRECTORY | O_CLOEXEC));
  std::atomic<bool> stop{false};
  std::atomic<long> swaps{0};
  std::thread swapper([&] {
    while (!stop.load()) {
      if (renameat2(dir.get(), "d", dir.get(), "l", RENAME_EXCHANGE) == 0) swaps.fetch_add(1);
    }
  });
  int inside = 0;
  for (int i = 0; i < 10000; ++i) {
    auto r = ReadAll(root_, "d/secret");
    if (r.ok()) {
      ASSERT_EQ(*r, "INSIDE") << "read escaped the root at iteration " << i;
      ++inside;
    }
    if (i % 10 == 0) (void)WriteFile(root_, "d/written", {}, FromString("w"));
  }
  stop = true;
  swapper.join();
  EXPECT_GT(swaps.load(), 0);
  EXPECT_GT(inside, 0);
  EXPECT_EQ(ReadHostFile(outside_ + "/secret"), "OUTSIDE");
  EXPECT_NE(access((outside_ + "/written").c_str(), F_OK), 0) << "a write landed outside";
}

}  // namespace
}  // namespace hutch::files
