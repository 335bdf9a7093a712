#include "sandbox/netns_pool.h"

#include <net/if.h>
#include <sys/resource.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <optional>
#include <random>
#include <set>

#include <fmt/format.h>

#include "common/log.h"
#include "sandbox/file_lock.h"
#include "sandbox/fs.h"
#include "sandbox/netlink.h"
#include "sandbox/netns.h"

namespace hutch::sandbox {

namespace {

std::string RandomHex8() {
  static thread_local std::mt19937 rng(std::random_device{}());
  return fmt::format("{:08x}", static_cast<uint32_t>(rng()));
}

// A kernel without IPv6 has nothing to disable.
Status DisableIpv6(const std::string& ifname) {
  Status st = WriteNetSysctl("ipv6/conf/" + ifname + "/disable_ipv6", "1");
  return st.code() == Code::kNotFound ? Status::Ok() : st;
}

}  // namespace

NetnsPool::NetnsPool(NetnsPoolOptions options) : options_(std::move(options)) {}

NetnsPool::~NetnsPool() { (void)Drain(); }

void NetnsPool::StartFilling() {
  std::lock_guard<std::mutex> lock(mu_);
  if (filler_.joinable() || stop_ || options_.size <= 0) return;
  filler_ = std::thread([this] { FillLoop(); });
}

std::vector<std::string> NetnsPool::Drain() {
  std::thread filler;
  std::deque<NetnsEntry> entries;
  {
    std::lock_guard<std::mutex> lock(mu_);
    stop_ = true;
    filler = std::move(filler_);
    cv_.notify_all();
  }
  if (filler.joinable()) filler.join();
  {
    std::lock_guard<std::mutex> lock(mu_);
    entries.swap(ready_);
  }
  std::vector<std::string> names;
  for (const auto& e : entries) names.push_back(e.host_ifname);
  return names;  // `entries` closes the fds here
}

size_t NetnsPool::ready() const {
  std::lock_guard<std::mutex> lock(mu_);
  return ready_.size();
}

Result<NetnsEntry> NetnsPool::Take() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (!ready_.empty()) {
      NetnsEntry e = std::move(ready_.front());
      ready_.pop_front();
      cv_.notify_all();  // below size: the filler makes another
      return e;
    }
    cv_.notify_all();
  }
  return MakeEntry();
}

void NetnsPool::FillLoop() {
  // Refills compete for the CPU with the creates that caused them (a create takes an entry and
  // wakes this thread while it still runs). At nice 10 the refill yields to them; were it to
  // starve, creates would make their own entries (Take) and still work.
  (void)setpriority(PRIO_PROCESS, static_cast<id_t>(gettid()), 10);
  int failures = 0;
  for (;;) {
    {
      std::unique_lock<std::mutex> lock(mu_);
      cv_.wait(lock, [&] { return stop_ || ready_.size() < static_cast<size_t>(options_.size); });
      if (stop_) return;
    }
    Result<NetnsEntry> e = MakeEntry();
    std::unique_lock<std::mutex> lock(mu_);
    if (!e.ok()) {
      // Back off (1 s, up to 30 s): a full subnet or a broken host does not heal by spinning.
      ++failures;
      LOG_WARN("network pool: {}", e.status().ToString());
      cv_.wait_for(lock, std::chrono::seconds(std::min(30, failures)), [&] { return stop_; });
      if (stop_) return;
      continue;
    }
    failures = 0;
    if (stop_) return;  // `e` is closed on the way out
    ready_.push_back(std::move(*e));
  }
}

Result<NetnsEntry> NetnsPool::MakeEntry() {
  std::lock_guard<std::mutex> make_lock(make_mu_);
  const core::Ipv4Cidr& subnet = options_.subnet;
  if (subnet.prefix > 30) return InvalidArgument("nat subnet must be /30 or larger");
  const uint32_t slots = uint32_t{1} << (30 - subnet.prefix);

  ASSIGN_OR_RETURN(FileLock lock, FileLock::Acquire(options_.lock_path));
  if (options_.before_create) RETURN_IF_ERROR(options_.before_create());
  ASSIGN_OR_RETURN(RtnlSocket host, RtnlSocket::Open());

  // A slot is taken when any host address lies in it: a live sandbox's gateway, one whose
  // namespace the kernel has not destroyed yet, or someone else's address.
  ASSIGN_OR_RETURN(std::vector<Ipv4AddressInfo> addrs, host.ListIpv4Addresses());
  std::set<uint32_t> used;
  for (const auto& a : addrs) {
    if (subnet.Contains(a.address)) used.insert((a.address - subnet.address) >> 2);
  }
  uint32_t slot = slots;
  for (uint32_t i = 0; i < slots; ++i) {
    uint32_t s = (next_slot_ + i) % slots;
    if (!used.count(s)) {
      slot = s;
      break;
    }
  }
  if (slot == slots)
    return Status(Code::kResourceExhausted,
                  fmt::format("network pool: every /30 of {} is in use", subnet.ToString()));
  next_slot_ = (slot + 1) % slots;

  NetnsEntry e;
  e.host_address = subnet.address + (slot << 2) + 1;
  e.sandbox_address = e.host_address + 1;
  e.prefix = 30;

  // Inside the new namespace: a netlink socket that stays bound to it, IPv6 off for the
  // interfaces to come (lo keeps ::1: it exists already), lo up.
  std::optional<RtnlSocket> inner;
  ASSIGN_OR_RETURN(e.netns, CreateNetns([&]() -> Status {
                     ASSIGN_OR_RETURN(RtnlSocket s, RtnlSocket::Open());
                     RETURN_IF_ERROR(DisableIpv6("default"));
                     ASSIGN_OR_RETURN(int lo, s.LinkIndex("lo"));
                     RETURN_IF_ERROR(s.SetLinkUp(lo));
                     inner = std::move(s);
                     return Status::Ok();
                   }));

  // The pair. A name clash (another process's, however unlikely) just means another name.
  Status made;
  for (int attempt = 0; attempt < 8; ++attempt) {
    e.host_ifname = options_.ifname_prefix + RandomHex8();
    made = host.CreateVethPair(e.host_ifname, options_.inner_ifname, e.netns.get(), options_.mtu);
    if (made.code() != Code::kConflict) break;
  }
  RETURN_IF_ERROR(made);
  // From here a failure needs no cleanup of the veth: closing e.netns destroys both ends.
  RETURN_IF_ERROR(DisableIpv6(e.host_ifname));
  unsigned host_index = if_nametoindex(e.host_ifname.c_str());
  if (host_index == 0) return ErrnoError("if_nametoindex " + e.host_ifname, errno);
  RETURN_IF_ERROR(host.AddIpv4Address(static_cast<int>(host_index), e.host_address, e.prefix));
  RETURN_IF_ERROR(host.SetLinkUp(static_cast<int>(host_index)));

  ASSIGN_OR_RETURN(int eth, inner->LinkIndex(options_.inner_ifname));
  RETURN_IF_ERROR(inner->AddIpv4Address(eth, e.sandbox_address, e.prefix));
  RETURN_IF_ERROR(inner->SetLinkUp(eth));
  RETURN_IF_ERROR(inner->AddIpv4DefaultRoute(e.host_address));
  return e;
}

}  // namespace hutch::sandbox
