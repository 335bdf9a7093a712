#include "sandbox/cgroup.h"

#include <signal.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>

#include <fmt/format.h>
#include <gtest/gtest.h>

#include "common/ids.h"
#include "sandbox/fs.h"
#include "sandbox/process.h"

namespace hutch::sandbox {
namespace {

std::vector<MountInfoEntry> Mounts(std::string_view text) {
  auto r = ParseMountInfo(text);
  EXPECT_TRUE(r.ok());
  return r.ok() ? *r : std::vector<MountInfoEntry>{};
}

TEST(CgroupLayoutTest, SeparateV1ControllersWithEmptyUnifiedIsV1) {
  auto layout = DetectCgroupLayout(
      Mounts("31 23 0:28 / /sys/fs/cgroup rw - tmpfs tmpfs rw,mode=755\n"
             "32 31 0:29 / /sys/fs/cgroup/cpu rw - cgroup cgroup rw,cpu\n"
             "33 31 0:30 / /sys/fs/cgroup/cpuacct rw - cgroup cgroup rw,cpuacct\n"
             "35 31 0:32 / /sys/fs/cgroup/memory rw - cgroup cgroup rw,memory\n"
             "37 31 0:34 / /sys/fs/cgroup/freezer rw - cgroup cgroup rw,freezer\n"
             "39 31 0:36 / /sys/fs/cgroup/pids rw - cgroup cgroup rw,pids\n"
             "40 31 0:37 / /sys/fs/cgroup/systemd rw - cgroup cgroup rw,name=systemd\n"
             "41 31 0:38 / /sys/fs/cgroup/unified rw - cgroup2 cgroup2 rw\n"));
  ASSERT_TRUE(layout.ok());
  EXPECT_EQ(layout->version, CgroupVersion::kV1);
  EXPECT_EQ(layout->v1.at("cpu"), "/sys/fs/cgroup/cpu");
  EXPECT_EQ(layout->v1.at("cpuacct"), "/sys/fs/cgroup/cpuacct");
  EXPECT_EQ(layout->v1.at("memory"), "/sys/fs/cgroup/memory");
  EXPECT_EQ(layout->v1.at("pids"), "/sys/fs/cgroup/pids");
  EXPECT_EQ(layout->v1.at("freezer"), "/sys/fs/cgroup/freezer");
  EXPECT_EQ(layout->v1.size(), 5u);  // not systemd
}

TEST(CgroupLayoutTest, CoMountedCpuAndCpuacctShareAPath) {
  auto layout = DetectCgroupLayout(
      Mounts("32 31 0:29 / /sys/fs/cgroup/cpu,cpuacct rw - cgroup cgroup rw,cpu,cpuacct\n"
             "35 31 0:32 / /sys/fs/cgroup/memory rw - cgroup cgroup rw,memory\n"));
  ASSERT_TRUE(layout.ok());
  EXPECT_EQ(layout->v1.at("cpu"), "/sys/fs/cgroup/cpu,cpuacct");
  EXPECT_EQ(layout->v1.at("cpuacct"), "/sys/fs/cgroup/cpu,cpuacct");
}

TEST(CgroupLayoutTest, UnifiedOnlyIsV2) {
  auto layout = DetectCgroupLayout(
      Mounts("30 23 0:26 / /sys/fs/cgroup rw,nosuid - cgroup2 cgroup2 rw,nsdelegate\n"));
  ASSERT_TRUE(layout.ok());
  EXPECT_EQ(layout->version, CgroupVersion::kV2);
  EXPECT_EQ(layout->v2, "/sys/fs/cgroup");
  EXPECT_TRUE(layout->v1.empty());
}

TEST(CgroupLayoutTest, NoCgroupsIsNotFound) {
  auto layout = DetectCgroupLayout(Mounts("22 27 0:21 / /proc rw - proc proc rw\n"));
  EXPECT_EQ(layout.status().code(), Code::kNotFound);
}

// ---- ChangeLimits on v2, against a tree of plain files ----
// This machine's memory controller is on v1, as on many CI hosts, so a real v2 group has no
// memory.max to lower; the v2 order (reclaim, check memory.current, then memory.max) is checked
// here against files standing in for the kernel's, which keep what is written to them.

class FakeV2Test : public ::testing::Test {
 protected:
  void SetUp() override {
    char tmpl[] = "/tmp/hutch-fakev2-XXXXXX";
    ASSERT_NE(mkdtemp(tmpl), nullptr);
    top_ = tmpl;
    ASSERT_TRUE(WriteNewFile(top_ + "/cgroup.controllers", "cpu memory pids\n", 0644).ok());
    ASSERT_TRUE(WriteNewFile(top_ + "/cgroup.subtree_control", "", 0644).ok());
    ASSERT_TRUE(MakeDir(top_ + "/root", 0755).ok());
    ASSERT_TRUE(WriteNewFile(top_ + "/root/cgroup.subtree_control", "", 0644).ok());
    group_ = top_ + "/root/g";
    ASSERT_TRUE(MakeDir(group_, 0755).ok());
    // Files written to start empty (a plain file is not truncated by a write as a cgroup file
    // is replaced), so "" reads as never written.
    for (auto [file, value] : {std::pair{"memory.current", "52428800"},
                               {"memory.max", ""},
                               {"memory.swap.max", ""},
                               {"memory.reclaim", ""},
                               {"cpu.max", ""},
                               {"pids.current", "3"},
                               {"pids.max", ""}})
      ASSERT_TRUE(WriteNewFile(group_ + "/" + file, value, 0644).ok());
    CgroupLayout layout;
    layout.version = CgroupVersion::kV2;
    layout.v2 = top_;
    auto m = CgroupManager::Open(layout, "root");
    ASSERT_TRUE(m.ok()) << m.status().ToString();
    manager_ = std::move(*m);
  }
  void TearDown() override { (void)RemoveTree(top_); }
  std::string Read(const std::string& file) {
    auto v = ReadFileToString(group_ + "/" + file);
    return v.ok() ? *v : "<missing>";
  }
  static CgroupLimits Limits(int64_t memory_mb, int64_t pids) {
    CgroupLimits l;
    l.memory_bytes = l.swap_bytes = memory_mb << 20;
    l.cpu_quota_us = 50000;
    l.pids_max = pids;
    return l;
  }
  std::string top_, group_;
  std::unique_ptr<CgroupManager> manager_;
};

TEST_F(FakeV2Test, LimitsAboveUseAreWritten) {
  ASSERT_TRUE(manager_->ChangeLimits("g", Limits(100, 64)).ok());
  EXPECT_EQ(Read("memory.max"), "104857600");
  EXPECT_EQ(Read("memory.swap.max"), "104857600");
  EXPECT_EQ(Read("cpu.max"), "50000 100000");
  EXPECT_EQ(Read("pids.max"), "64");
  EXPECT_EQ(Read("memory.reclaim"), "");  // nothing to reclaim
}

TEST_F(FakeV2Test, MemoryBelowUseIsReclaimedFirstAndRefusedWhenItStaysAbove) {
  ASSERT_TRUE(WriteNewFile(group_ + "/memory.current", "314572800", 0644).ok());  // 300 MB
  Status st = manager_->ChangeLimits("g", Limits(100, 64));
  EXPECT_EQ(st.code(), Code::kConflict) << st.ToString();
  EXPECT_NE(st.message().find("uses now (300 MB"), std::string::npos) << st.message();
  EXPECT_EQ(Read("memory.reclaim"), "209715200");  // asked for the difference
  EXPECT_EQ(Read("memory.max"), "");
  EXPECT_EQ(Read("cpu.max"), "");
  EXPECT_EQ(Read("pids.max"), "");
}

TEST_F(FakeV2Test, PidsBelowWhatRunsIsRefusedBeforeAnythingChanges) {
  ASSERT_TRUE(WriteNewFile(group_ + "/pids.current", "40", 0644).ok());
  Status st = manager_->ChangeLimits("g", Limits(100, 10));
  EXPECT_EQ(st.code(), Code::kConflict) << st.ToString();
  EXPECT_EQ(Read("memory.max"), "");
  EXPECT_EQ(Read("pids.max"), "");
}

// ---- Against the real hierarchies (root only) ----

class RealCgroupTest : public ::testing::Test {
 protected:
  void SetUp() override {
    if (geteuid() != 0) GTEST_SKIP() << "needs root";
    auto mounts = ReadSelfMountInfo();
    ASSERT_TRUE(mounts.ok());
    mounts_ = *mounts;
    root_name_ = NewId("hutchtest");
  }
  void TearDown() override {
    // The per-test root directories are ours to remove.
    for (const auto& dir : roots_) {
      EXPECT_EQ(rmdir(dir.c_str()), 0) << dir << ": " << strerror(errno);
    }
  }
  std::vector<MountInfoEntry> mounts_;
  std::string root_name_;
  std::vector<std::string> roots_;
};

TEST_F(RealCgroupTest, HostLayoutLimitsAndTeardown) {
  auto layout = DetectCgroupLayout(mounts_);
  if (!layout.ok()) GTEST_SKIP() << layout.status().ToString();
  auto manager = CgroupManager::Open(*layout, root_name_);
  ASSERT_TRUE(manager.ok()) << manager.status().ToString();
  CgroupView probe = (*manager)->OpenGroup("x");
  for (const auto& p : probe.paths()) roots_.push_back(p.substr(0, p.rfind('/')));
  CgroupLimits limits;
  limits.memory_bytes = 64 << 20;
  limits.swap_bytes = 64 << 20;
  limits.cpu_quota_us = 50000;
  limits.pids_max = 17;
  auto group = (*manager)->CreateGroup("g1", limits);
  ASSERT_TRUE(group.ok()) << group.status().ToString();
  EXPECT_EQ((*manager)->CreateGroup("g1", limits).status().code(), Code::kConflict);
  auto listed = (*manager)->ListGroups();
  ASSERT_TRUE(listed.ok());
  EXPECT_EQ(*listed, std::vector<std::string>{"g1"});

  if (layout->version == CgroupVersion::kV1) {
    auto read = [&](const std::string& controller, const std::string& file) {
      auto s =
          ReadFileToString(fmt::format("{}/{}/g1/{}", layout->v1.at(controller), root_name_, file));
      return s.ok() ? *s : s.status().ToString();
    };
    EXPECT_EQ(read("memory", "memory.limit_in_bytes"), std::to_string(64 << 20) + "\n");
    if (PathExists(layout->v1.at("memory") + "/memory.memsw.limit_in_bytes")) {
      EXPECT_EQ(read("memory", "memory.memsw.limit_in_bytes"), std::to_string(128 << 20) + "\n");
    }
    if (layout->v1.count("cpu")) {
      EXPECT_EQ(read("cpu", "cpu.cfs_quota_us"), "50000\n");
    }
    if (layout->v1.count("pids")) {
      EXPECT_EQ(read("pids", "pids.max"), "17\n");
    }
  }

  // A process in the group; KillAll ends it; the group empties and goes away.
  pid_t pid = fork();
  if (pid == 0) {
    pause();
    _exit(0);
  }
  ASSERT_GT(pid, 0);
  ASSERT_TRUE(group->AddProcess(pid).ok());
  EXPECT_TRUE(group->HasProcess(pid));
  auto pids = group->Pids();
  ASSERT_TRUE(pids.ok());
  EXPECT_EQ(*pids, std::vector<pid_t>{pid});
  ASSERT_TRUE(group->KillAll().ok());
  int status = 0;
  ASSERT_EQ(waitpid(pid, &status, 0), pid);
  EXPECT_TRUE(WIFSIGNALED(status));
  EXPECT_TRUE(group->WaitEmpty(2000).ok());
  std::vector<std::string> paths = group->paths();
  EXPECT_TRUE(group->Remove().ok());
  for (const auto& p : paths) EXPECT_FALSE(PathExists(p)) << p;
  EXPECT_TRUE(Cgroup((*manager)->OpenGroup("g1")).Remove().ok());  // idempotent
}

// The v2 code path on the host's cgroup2 mount, also where it has no controllers (as on a
// hybrid v1 host): clone3 straight into the group, cgroup.kill, rmdir.
TEST_F(RealCgroupTest, V2CloneIntoCgroupAndKill) {
  CgroupLayout layout;
  for (const auto& m : mounts_) {
    if (m.fs_type == "cgroup2") layout.v2 = m.mount_point;
  }
  if (layout.v2.empty()) GTEST_SKIP() << "no cgroup2 mount";
  layout.version = CgroupVersion::kV2;
  auto manager = CgroupManager::Open(layout, root_name_);
  ASSERT_TRUE(manager.ok()) << manager.status().ToString();
  roots_.push_back(layout.v2 + "/" + root_name_);
  auto group = (*manager)->CreateGroup("g2", CgroupLimits{});
  ASSERT_TRUE(group.ok()) << group.status().ToString();
  auto dir_fd = group->OpenDirFd();
  ASSERT_TRUE(dir_fd.ok());

  SpawnOptions opts;
  opts.path = "/bin/sleep";
  opts.argv = {"sleep", "1000"};
  opts.cgroup_fd = dir_fd->get();
  auto child = SpawnProcess(opts);
  ASSERT_TRUE(child.ok()) << child.status().ToString();
  EXPECT_TRUE(group->HasProcess(child->pid()));
  ASSERT_TRUE(group->KillAll().ok());
  auto status = child->Wait();
  ASSERT_TRUE(status.ok());
  EXPECT_TRUE(WIFSIGNALED(*status));
  EXPECT_EQ(WTERMSIG(*status), SIGKILL);
  EXPECT_TRUE(group->WaitEmpty(2000).ok());
  EXPECT_TRUE(group->Remove().ok());
}

// A child that counts in shared memory, in the group whose cgroup.procs `procs` is, joined the
// way the agent's children join the work leaf: by writing "0" to a file the parent opened.
struct Counter {
  pid_t pid = -1;
  volatile uint64_t* count = nullptr;
};

Counter StartCounter(int procs) {
  void* mem = mmap(nullptr, 4096, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
  if (mem == MAP_FAILED) return {};
  Counter c;
  c.count = static_cast<volatile uint64_t*>(mem);
  c.pid = fork();
  if (c.pid == 0) {
    if (write(procs, "0", 1) != 1) _exit(3);
    for (;;) *c.count = *c.count + 1;
  }
  return c;
}

// Whether the counter moves within 50 ms.
bool Advances(const Counter& c) {
  uint64_t before = *c.count;
  for (int i = 0; i < 50; ++i) {
    usleep(1000);
    if (*c.count != before) return true;
  }
  return false;
}

// Pausing a sandbox freezes its work leaf only: the agent's leaf keeps running, a freeze and
// thaw of the whole group (a checkpoint of a paused sandbox) leaves the work leaf frozen, and
// KillAll, WaitEmpty and Remove cover the leaves (a frozen one too).
void ExercisePauseLeaves(const CgroupLayout& layout, const std::string& root_name,
                         std::vector<std::string>* roots) {
  auto manager = CgroupManager::Open(layout, root_name);
  ASSERT_TRUE(manager.ok()) << manager.status().ToString();
  CgroupView probe = (*manager)->OpenGroup("x");
  for (const auto& p : probe.paths()) roots->push_back(p.substr(0, p.rfind('/')));
  auto group = (*manager)->CreateGroup("p1", CgroupLimits{});
  ASSERT_TRUE(group.ok()) << group.status().ToString();
  ASSERT_TRUE((*manager)->CreateLeaves(*group).ok());
  CgroupView agent = group->Leaf(kAgentLeaf);
  CgroupView work = group->Leaf(kWorkLeaf);
  auto agent_procs = agent.OpenProcsFile();
  auto work_procs = work.OpenProcsFile();
  ASSERT_TRUE(agent_procs.ok() && work_procs.ok());
  Counter a = StartCounter(agent_procs->get());
  Counter w = StartCounter(work_procs->get());
  ASSERT_GT(a.pid, 0);
  ASSERT_GT(w.pid, 0);
  for (int i = 0; i < 1000 && (!work.HasProcess(w.pid) || !agent.HasProcess(a.pid)); ++i)
    usleep(1000);
  EXPECT_TRUE(work.HasProcess(w.pid));
  EXPECT_TRUE(group->HasProcess(w.pid));
  EXPECT_TRUE(group->HasProcess(a.pid));
  auto pids = group->Pids();
  ASSERT_TRUE(pids.ok());
  EXPECT_EQ(*pids, (std::vector<pid_t>{std::min(a.pid, w.pid), std::max(a.pid, w.pid)}));

  ASSERT_TRUE(work.Freeze().ok());
  EXPECT_TRUE(work.IsFrozen());
  EXPECT_FALSE(agent.IsFrozen());
  EXPECT_FALSE(Advances(w));
  EXPECT_TRUE(Advances(a));
  ASSERT_TRUE(group->Freeze().ok());
  EXPECT_TRUE(agent.IsFrozen());
  EXPECT_FALSE(Advances(a));
  ASSERT_TRUE(group->Thaw().ok());
  EXPECT_TRUE(Advances(a));
  EXPECT_TRUE(work.IsFrozen());
  EXPECT_FALSE(Advances(w));

  ASSERT_TRUE(group->KillAll().ok());
  for (pid_t pid : {a.pid, w.pid}) {
    int status = 0;
    ASSERT_EQ(waitpid(pid, &status, 0), pid);
    EXPECT_TRUE(WIFSIGNALED(status));
  }
  EXPECT_TRUE(group->WaitEmpty(2000).ok());
  std::string work_dir = work.paths()[0];
  EXPECT_TRUE(group->Remove().ok());
  EXPECT_FALSE(PathExists(work_dir));
  munmap(const_cast<uint64_t*>(a.count), 4096);
  munmap(const_cast<uint64_t*>(w.count), 4096);
}

TEST_F(RealCgroupTest, PauseFreezesTheWorkLeafOnlyHostLayout) {
  auto layout = DetectCgroupLayout(mounts_);
  if (!layout.ok()) GTEST_SKIP() << layout.status().ToString();
  ExercisePauseLeaves(*layout, root_name_, &roots_);
}

TEST_F(RealCgroupTest, PauseFreezesTheWorkLeafOnlyV2) {
  CgroupLayout layout;
  for (const auto& m : mounts_) {
    if (m.fs_type == "cgroup2") layout.v2 = m.mount_point;
  }
  if (layout.v2.empty()) GTEST_SKIP() << "no cgroup2 mount";
  layout.version = CgroupVersion::kV2;
  ExercisePauseLeaves(layout, root_name_, &roots_);
}

}  // namespace
}  // namespace hutch::sandbox
