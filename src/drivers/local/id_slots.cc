#include "drivers/local/id_slots.h"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <charconv>

#include <fmt/format.h>

#include "sandbox/fs.h"

namespace hutch::drivers::local {

Result<std::unique_ptr<IdSlots>> IdSlots::Open(std::string dir,
                                               std::function<bool(std::string_view)> session_exists,
                                               std::vector<sandbox::IdRange> reserved,
                                               uint32_t first_host_id, uint32_t slots) {
  if (slots == 0 || uint64_t{first_host_id} + uint64_t{slots} * sandbox::kIdsPerSandbox >
                        (uint64_t{1} << 32) - 1) {
    return InvalidArgument("id slots exceed the 32-bit id space");
  }
  RETURN_IF_ERROR(sandbox::MakeDirs(dir, 0700));
  return std::unique_ptr<IdSlots>(new IdSlots(std::move(dir), std::move(session_exists),
                                              std::move(reserved), first_host_id, slots));
}

std::string IdSlots::ReadSlot(const std::string& path) {
  char buf[256];
  ssize_t n = readlink(path.c_str(), buf, sizeof buf);
  return n > 0 && static_cast<size_t>(n) < sizeof buf ? std::string(buf, static_cast<size_t>(n))
                                                      : "";
}

bool IdSlots::Reserved(uint32_t slot) const {
  for (const auto& r : reserved_) {
    if (sandbox::Overlaps(RangeOf(slot), r)) return true;
  }
  return false;
}

Result<uint32_t> IdSlots::Acquire(std::string_view session_id) {
  std::lock_guard<std::mutex> lock(mu_);
  for (uint32_t i = 0; i < slots_; ++i) {
    uint32_t slot = (next_ + i) % slots_;
    if (Reserved(slot)) continue;
    std::string path = fmt::format("{}/{}", dir_, slot);
    for (int attempt = 0; attempt < 2; ++attempt) {
      // A symlink whose target is the session id: created atomically (EEXIST when taken) in
      // one syscall, where a file would take open, write and close.
      if (symlink(std::string(session_id).c_str(), path.c_str()) == 0) {
        next_ = (slot + 1) % slots_;
        return slot;
      }
      if (errno != EEXIST) return ErrnoError("create " + path, errno);
      // Taken. Its owner may be gone (a server that crashed between create and destroy).
      std::string owner = ReadSlot(path);
      if (owner.empty() || session_exists_(owner)) break;
      unlink(path.c_str());  // and try once more: another process may win the race
    }
  }
  return ResourceExhausted(fmt::format("all {} user namespace id ranges are in use", slots_));
}

Status IdSlots::Release(uint32_t slot, std::string_view session_id) {
  if (slot >= slots_) return InvalidArgument(fmt::format("id slot {} out of range", slot));
  std::string path = fmt::format("{}/{}", dir_, slot);
  if (ReadSlot(path) != session_id) return Status::Ok();  // someone else's, or free
  if (unlink(path.c_str()) != 0 && errno != ENOENT) return ErrnoError("unlink " + path, errno);
  return Status::Ok();
}

std::vector<sandbox::IdRange> ParseSubIdFile(std::string_view text) {
  std::vector<sandbox::IdRange> out;
  size_t i = 0;
  while (i < text.size()) {
    size_t end = text.find('\n', i);
    if (end == std::string_view::npos) end = text.size();
    std::string_view line = text.substr(i, end - i);
    i = end + 1;
    size_t a = line.find(':');
    size_t b = a == std::string_view::npos ? a : line.find(':', a + 1);
    if (b == std::string_view::npos) continue;
    uint32_t start = 0, count = 0;
    std::string_view s1 = line.substr(a + 1, b - a - 1), s2 = line.substr(b + 1);
    auto r1 = std::from_chars(s1.data(), s1.data() + s1.size(), start);
    auto r2 = std::from_chars(s2.data(), s2.data() + s2.size(), count);
    if (r1.ec != std::errc() || r2.ec != std::errc() || r1.ptr != s1.data() + s1.size() ||
        r2.ptr != s2.data() + s2.size() || count == 0) {
      continue;
    }
    out.push_back({start, count});
  }
  return out;
}

}  // namespace hutch::drivers::local
