// CgroupManager::ChangeLimits: new limits for a group whose processes run (PATCH of a session's
// resources). Raising a limit always works; lowering one below what the group uses now must not
// hurt the group, so each such case is checked first and refused (conflict) instead.
#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <charconv>

#include <fmt/format.h>

#include "common/unique_fd.h"
#include "sandbox/cgroup.h"
#include "sandbox/fs.h"

namespace hutch::sandbox {

namespace {

constexpr int64_t kMiB = int64_t{1} << 20;

// One write(2) that keeps its errno: EBUSY from memory.limit_in_bytes is the answer, not a
// failure.
int WriteErrno(const std::string& path, std::string_view value) {
  UniqueFd fd(open(path.c_str(), O_WRONLY | O_CLOEXEC));
  if (!fd) return errno;
  if (write(fd.get(), value.data(), value.size()) < 0) return errno;
  return 0;
}

// The first number in a cgroup file ("max" and missing files are 0).
int64_t ReadNumber(const std::string& path) {
  auto text = ReadFileToString(path);
  if (!text.ok()) return 0;
  int64_t v = 0;
  std::from_chars(text->data(), text->data() + text->size(), v);
  return v;
}

std::string Mb(int64_t bytes) { return fmt::format("{} MB", (bytes + kMiB - 1) / kMiB); }

Status MemoryInUse(int64_t used, int64_t limit) {
  return Conflict(fmt::format(
      "memory {} is below what the session uses now ({}, after the kernel reclaimed what it "
      "could); end processes or free memory in the session, or ask for at least {}",
      Mb(limit), Mb(used), Mb(used)));
}

// v1: memory.limit_in_bytes tries to reclaim down to the new limit and fails with EBUSY when it
// cannot, leaving the old one; memsw (memory + swap) must never be below it, so it goes first
// when raising and last when lowering.
Status ChangeMemoryV1(const std::string& dir, int64_t memory, int64_t swap) {
  std::string mem_file = dir + "/memory.limit_in_bytes";
  std::string memsw_file = dir + "/memory.memsw.limit_in_bytes";
  bool memsw = PathExists(memsw_file);
  bool raising = memory >= ReadNumber(mem_file);
  if (raising && memsw)
    RETURN_IF_ERROR(WriteExistingFile(memsw_file, std::to_string(memory + swap)));
  if (int err = WriteErrno(mem_file, std::to_string(memory)); err != 0) {
    if (err == EBUSY) return MemoryInUse(ReadNumber(dir + "/memory.usage_in_bytes"), memory);
    return ErrnoError("write " + mem_file, err);
  }
  if (!raising && memsw) {
    if (int err = WriteErrno(memsw_file, std::to_string(memory + swap)); err != 0) {
      // Memory fits, but not with what is swapped out: put the old memory limit back.
      (void)WriteExistingFile(mem_file, std::to_string(ReadNumber(memsw_file) - swap));
      if (err == EBUSY)
        return MemoryInUse(ReadNumber(dir + "/memory.memsw.usage_in_bytes") - swap, memory);
      return ErrnoError("write " + memsw_file, err);
    }
  }
  return Status::Ok();
}

// v2: memory.max below memory.current makes the kernel reclaim and, failing that, OOM-kill in
// the group. So: ask for the reclaim first (memory.reclaim, Linux 5.19+; EAGAIN when it got less
// than asked), then refuse while the group still uses more than the new limit. What the group
// allocates between the check and the write is reclaimed like any allocation at the limit.
Status ChangeMemoryV2(const std::string& dir, int64_t memory, int64_t swap) {
  int64_t current = ReadNumber(dir + "/memory.current");
  if (current > memory) {
    if (PathExists(dir + "/memory.reclaim"))
      (void)WriteErrno(dir + "/memory.reclaim", std::to_string(current - memory));
    current = ReadNumber(dir + "/memory.current");
    if (current > memory) return MemoryInUse(current, memory);
  }
  RETURN_IF_ERROR(WriteExistingFile(dir + "/memory.max", std::to_string(memory)));
  if (PathExists(dir + "/memory.swap.max"))
    RETURN_IF_ERROR(WriteExistingFile(dir + "/memory.swap.max", std::to_string(swap)));
  return Status::Ok();
}

Status ChangeCpu(const std::string& dir, bool v2, const CgroupLimits& limits) {
  if (v2) {
    std::string quota = limits.cpu_quota_us > 0 ? std::to_string(limits.cpu_quota_us) : "max";
    return WriteExistingFile(dir + "/cpu.max", fmt::format("{} {}", quota, limits.cpu_period_us));
  }
  RETURN_IF_ERROR(
      WriteExistingFile(dir + "/cpu.cfs_period_us", std::to_string(limits.cpu_period_us)));
  return WriteExistingFile(dir + "/cpu.cfs_quota_us",
                           std::to_string(limits.cpu_quota_us > 0 ? limits.cpu_quota_us : -1));
}

}  // namespace

Status CgroupManager::ChangeLimits(std::string_view name, const CgroupLimits& limits) const {
  bool v2 = layout_.version == CgroupVersion::kV2;
  auto have = [&](std::string_view c) {
    return v2 ? std::find(enabled_.begin(), enabled_.end(), c) != enabled_.end()
              : layout_.v1.count(std::string(c)) > 0;
  };
  // The refusable checks before anything changes: processes, then memory (which can still be
  // refused by the kernel on v1, before cpu and pids are touched).
  std::string pids_dir = have("pids") ? ControllerDir("pids", name) : "";
  if (!pids_dir.empty() && limits.pids_max > 0) {
    int64_t running = ReadNumber(pids_dir + "/pids.current");
    if (running > limits.pids_max)
      return Conflict(fmt::format(
          "pids {} is below the {} processes and threads the session runs now; end some of "
          "them, or ask for at least {}",
          limits.pids_max, running, running));
  }
  if (limits.memory_bytes > 0 && have("memory")) {
    std::string dir = ControllerDir("memory", name);
    if (!PathExists(dir)) return NotFound(fmt::format("no cgroup {}", dir));
    RETURN_IF_ERROR(v2 ? ChangeMemoryV2(dir, limits.memory_bytes, limits.swap_bytes)
                       : ChangeMemoryV1(dir, limits.memory_bytes, limits.swap_bytes));
  }
  if (have("cpu")) RETURN_IF_ERROR(ChangeCpu(ControllerDir("cpu", name), v2, limits));
  if (!pids_dir.empty() && limits.pids_max > 0)
    RETURN_IF_ERROR(WriteExistingFile(pids_dir + "/pids.max", std::to_string(limits.pids_max)));
  return Status::Ok();
}

}  // namespace hutch::sandbox
