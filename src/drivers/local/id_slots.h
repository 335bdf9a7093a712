// Host id ranges for sandboxes with a user namespace: slot n maps a sandbox's ids 0..65535 to
// host ids [first_host_id + n·65536, +65536). One slot per live session, so root of one session
// and root of another are different host users — a process that escaped its namespaces would
// still find the other sessions' files and processes owned by a stranger.
//
// A slot is taken by creating `dir`/<n>, a symlink to the session id (symlink(2) fails with
// EEXIST when it is taken): two server processes on one data dir never hand out the same range,
// and a restarted server knows which are in use. A slot whose session no longer exists (a crash
// between create and destroy) is taken over.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <vector>

#include "common/status.h"
#include "sandbox/idmap.h"

namespace hutch::drivers::local {

// 2^30: above the ranges /etc/subuid hands to users (100000 + 65536·k) and systemd's dynamic
// users, and — with kIdSlots — below 2^31, where some tools treat ids as negative.
inline constexpr uint32_t kFirstSandboxHostId = 1u << 30;
inline constexpr uint32_t kIdSlots = 16384;

class IdSlots {
 public:
  // `session_exists(id)` says whether a slot's owner is still around. `reserved` are host
  // ranges that are someone else's (from /etc/subuid and /etc/subgid): slots overlapping one
  // are never handed out.
  static Result<std::unique_ptr<IdSlots>> Open(std::string dir,
                                               std::function<bool(std::string_view)> session_exists,
                                               std::vector<sandbox::IdRange> reserved = {},
                                               uint32_t first_host_id = kFirstSandboxHostId,
                                               uint32_t slots = kIdSlots);

  // A free slot for `session_id`; resource_exhausted when all are taken.
  Result<uint32_t> Acquire(std::string_view session_id);
  // Frees `slot` if it belongs to `session_id` (a slot that is someone else's is left alone).
  Status Release(uint32_t slot, std::string_view session_id);

  sandbox::IdRange RangeOf(uint32_t slot) const {
    return {first_host_id_ + slot * sandbox::kIdsPerSandbox, sandbox::kIdsPerSandbox};
  }
  uint32_t slots() const { return slots_; }

 private:
  IdSlots(std::string dir, std::function<bool(std::string_view)> session_exists,
          std::vector<sandbox::IdRange> reserved, uint32_t first_host_id, uint32_t slots)
      : dir_(std::move(dir)),
        session_exists_(std::move(session_exists)),
        reserved_(std::move(reserved)),
        first_host_id_(first_host_id),
        slots_(slots) {}
  bool Reserved(uint32_t slot) const;
  // The session id a slot names; "" when free or unreadable.
  static std::string ReadSlot(const std::string& path);

  const std::string dir_;
  const std::function<bool(std::string_view)> session_exists_;
  const std::vector<sandbox::IdRange> reserved_;
  const uint32_t first_host_id_;
  const uint32_t slots_;
  std::mutex mu_;
  uint32_t next_ = 0;  // GUARDED_BY(mu_): where the next search starts
};

// The ranges of an /etc/subuid or /etc/subgid file ("name:start:count" lines); malformed lines
// are skipped.
std::vector<sandbox::IdRange> ParseSubIdFile(std::string_view text);

}  // namespace hutch::drivers::local
