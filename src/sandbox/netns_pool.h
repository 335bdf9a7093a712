// A warm pool of network namespaces for nat sandboxes, each already wired to the host:
//
//   host (root netns)                      pool netns (later: the sandbox's)
//   hutch-1a2b3c4d  10.89.0.1/30  <─veth─>  eth0  10.89.0.2/30, default via 10.89.0.1
//                                           lo    up
//
// Making one costs ~1 ms (unshare, veth, addresses, routes) and is done ahead of time on a
// background thread, so a create only takes one. Tearing one down costs far more (~16 ms per
// veth, an RCU grace period each) and is never done by hand: nothing but an fd holds a pool
// namespace — no bind mount under /run/netns — so once the sandbox that joined it is gone and
// the fd is closed, the kernel destroys the namespace and its veth pair on its own, batching
// the deletions of every namespace that died meanwhile into one pass (net/core/net_namespace.c
// cleanup_net), off any request path. The same holds for a crash: a dead server's pool dies
// with its fds, and only what live sandboxes still use remains.
//
// Addresses: the subnet is cut into /30s. A slot is free when no address of the host falls
// in it; slots are chosen and their veth made under an flock shared by every hutch process on
// the machine, so two servers never take the same one.
#pragma once

#include <condition_variable>
#include <cstdint>
#include <deque>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "common/status.h"
#include "common/unique_fd.h"
#include "core/cidr.h"

namespace hutch::sandbox {

struct NetnsPoolOptions {
  core::Ipv4Cidr subnet{0x0a590000, 16};  // 10.89.0.0/16
  std::string ifname_prefix = "hutch-";   // host side: prefix + 8 hex digits (≤ 15 characters)
  std::string inner_ifname = "eth0";
  int size = 8;  // entries kept ready
  int mtu = 0;   // 0: the kernel's default
  // flock'ed while a slot is chosen and its veth made; the same path for every hutch process.
  std::string lock_path = "/run/hutch/net.lock";
  // Runs under that lock before an entry is made (the driver makes sure the firewall exists
  // before any interface it must cover does).
  std::function<Status()> before_create;
};

// One wired namespace. Closing `netns` gives it up (see above).
struct NetnsEntry {
  UniqueFd netns;
  std::string host_ifname;
  uint32_t host_address = 0;  // the sandbox's gateway
  uint32_t sandbox_address = 0;
  int prefix = 30;
};

class NetnsPool {
 public:
  explicit NetnsPool(NetnsPoolOptions options);
  // Stops the refill thread and closes every ready entry.
  ~NetnsPool();
  NetnsPool(const NetnsPool&) = delete;
  NetnsPool& operator=(const NetnsPool&) = delete;

  // Starts the background thread that keeps `size` entries ready. Idempotent.
  void StartFilling();
  // A ready entry, or one made now on the calling thread when none is.
  Result<NetnsEntry> Take();
  // Stops refilling and closes every ready entry; returns their host-side interface names,
  // which disappear once the kernel has destroyed their namespaces.
  std::vector<std::string> Drain();
  size_t ready() const;

  // Makes one entry on the calling thread (what the refill thread does).
  Result<NetnsEntry> MakeEntry();

 private:
  void FillLoop();

  const NetnsPoolOptions options_;
  mutable std::mutex mu_;
  std::condition_variable cv_;
  std::deque<NetnsEntry> ready_;  // GUARDED_BY(mu_)
  bool stop_ = false;             // GUARDED_BY(mu_)
  std::thread filler_;            // started once
  uint32_t next_slot_ = 0;        // GUARDED_BY(make_mu_): where the next free-slot search begins
  std::mutex make_mu_;            // one entry at a time per process
};

}  // namespace hutch::sandbox
