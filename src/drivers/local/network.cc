#include "drivers/local/network.h"

#include "drivers/local/local_driver.h"

#include <arpa/inet.h>
#include <dirent.h>
#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstdlib>
#include <thread>

#include <fmt/format.h>

#include "common/log.h"
#include "common/time.h"
#include "sandbox/file_lock.h"
#include "sandbox/fs.h"
#include "sandbox/netns.h"

namespace hutch::drivers::local {

namespace {

// How long the destructor waits for the kernel to remove the interfaces this driver gave up,
// before it decides whether the table may go.
constexpr int64_t kReleasedGoneTimeoutMs = 5000;

std::vector<std::string> SplitWhitespace(std::string_view line) {
  std::vector<std::string> out;
  size_t i = 0;
  while (i < line.size()) {
    while (i < line.size() && (line[i] == ' ' || line[i] == '\t')) ++i;
    size_t j = i;
    while (j < line.size() && line[j] != ' ' && line[j] != '\t') ++j;
    if (j > i) out.emplace_back(line.substr(i, j - i));
    i = j;
  }
  return out;
}

std::vector<std::string_view> Lines(std::string_view text) {
  std::vector<std::string_view> out;
  size_t pos = 0;
  while (pos < text.size()) {
    size_t nl = text.find('\n', pos);
    if (nl == std::string_view::npos) nl = text.size();
    out.push_back(text.substr(pos, nl - pos));
    pos = nl + 1;
  }
  return out;
}

bool InterfaceExists(const std::string& name) {
  return sandbox::PathExists("/sys/class/net/" + name);
}

// Host-side hutch interfaces that exist now, per /sys/class/net.
Result<std::vector<std::string>> HutchInterfaces(const std::string& prefix) {
  std::vector<std::string> out;
  // /sys/class/net lists the interfaces of the namespace sysfs was mounted in: the host's.
  UniqueFd dir(open("/sys/class/net", O_RDONLY | O_DIRECTORY | O_CLOEXEC));
  if (!dir) return ErrnoError("open /sys/class/net", errno);
  DIR* d = fdopendir(dir.Release());
  if (!d) return ErrnoError("fdopendir /sys/class/net", errno);
  while (dirent* e = readdir(d)) {
    std::string_view n = e->d_name;
    if (n.starts_with(prefix)) out.emplace_back(n);
  }
  closedir(d);
  return out;
}

std::string Trim(std::string s) {
  while (!s.empty() && (s.back() == '\n' || s.back() == ' ')) s.pop_back();
  return s;
}

}  // namespace

std::vector<uint32_t> HostResolvers(std::string_view resolv_conf) {
  std::vector<uint32_t> out;
  for (std::string_view line : Lines(resolv_conf)) {
    auto words = SplitWhitespace(line);
    if (words.size() < 2 || words[0] != "nameserver") continue;
    auto addr = core::ParseIpv4Address(words[1], "nameserver");
    if (!addr.ok()) continue;            // IPv6 resolvers: sandboxes have no IPv6
    if ((*addr >> 24) == 127) continue;  // the host's loopback: unreachable from a sandbox
    out.push_back(*addr);
  }
  return out;
}

std::vector<HostRoute> ParseProcNetRoute(std::string_view text) {
  std::vector<HostRoute> out;
  bool header = true;
  for (std::string_view line : Lines(text)) {
    if (header) {
      header = false;
      continue;
    }
    auto f = SplitWhitespace(line);
    if (f.size() < 8) continue;
    // Addresses are printed as the raw 32-bit words, in network byte order.
    uint32_t dst = static_cast<uint32_t>(std::strtoul(f[1].c_str(), nullptr, 16));
    uint32_t gw = static_cast<uint32_t>(std::strtoul(f[2].c_str(), nullptr, 16));
    uint32_t mask = ntohl(static_cast<uint32_t>(std::strtoul(f[7].c_str(), nullptr, 16)));
    int prefix = __builtin_popcount(mask);
    HostRoute r;
    r.ifname = f[0];
    r.dst = core::Ipv4Cidr{ntohl(dst) & mask, prefix};
    r.connected = gw == 0;
    out.push_back(std::move(r));
  }
  return out;
}

// ---- NatLease ----

NatLease::NatLease(NatLease&& other) noexcept
    : network_(std::exchange(other.network_, nullptr)),
      entry_(std::move(other.entry_)),
      has_rules_(other.has_rules_) {}

NatLease::~NatLease() {
  if (!network_) return;
  // Not committed: the create failed. The namespace dies with our fd (and the killed agent).
  Status st = network_->Release(entry_.host_ifname, has_rules_);
  if (!st.ok()) LOG_WARN("give back {}: {}", entry_.host_ifname, st.ToString());
}

void NatLease::Commit() {
  network_ = nullptr;
  entry_.netns.Reset();
}

// ---- LocalNetwork ----

Result<std::unique_ptr<LocalNetwork>> LocalNetwork::Start(const NatOptions& options,
                                                          bool agents_over_tcp) {
  std::unique_ptr<LocalNetwork> n(new LocalNetwork());
  n->pool_options_.ifname_prefix = agents_over_tcp ? kTcpIfnamePrefix : kLocalIfnamePrefix;
  n->peer_prefix_ = agents_over_tcp ? kLocalIfnamePrefix : kTcpIfnamePrefix;
  n->firewall_.table = agents_over_tcp ? sandbox::kTcpNatTable : sandbox::kNatTable;
  n->firewall_.peer_prefixes = {n->peer_prefix_};
  // Only local-tcp's table has the agent port's exception: the local driver's rules stay what
  // every hutch server writes into the shared table.
  if (agents_over_tcp) n->firewall_.agent_port = kAgentTcpPort;
  ASSIGN_OR_RETURN(core::Ipv4Cidr subnet, core::ParseIpv4Cidr(options.subnet, "network.subnet"));
  if (subnet.prefix > 24)
    return InvalidArgument(
        fmt::format("network.subnet {} is too small: give sandboxes at least a /24 (64 sessions)",
                    subnet.ToString()));
  n->pool_options_.subnet = subnet;
  n->pool_options_.size = options.pool_size;
  n->pool_options_.lock_path = kNetLockPath;

  // The subnet must be ours alone: a route of the host into it would make sandboxes' traffic
  // and someone else's indistinguishable.
  ASSIGN_OR_RETURN(std::string routes, sandbox::ReadFileToString("/proc/net/route"));
  std::string uplink;
  for (const HostRoute& r : ParseProcNetRoute(routes)) {
    if (r.dst.prefix == 0) {
      if (uplink.empty()) uplink = r.ifname;
      continue;
    }
    if (r.ifname.starts_with(n->pool_options_.ifname_prefix) ||
        r.ifname.starts_with(n->peer_prefix_)) {
      continue;
    }
    if (r.dst.Overlaps(subnet))
      return InvalidArgument(fmt::format(
          "network.subnet {} overlaps the host's route to {} on {}: choose another subnet",
          subnet.ToString(), r.dst.ToString(), r.ifname));
    if (r.connected) n->firewall_.host_nets.push_back(r.dst);
  }
  n->pool_options_.mtu = options.mtu;
  if (n->pool_options_.mtu == 0 && !uplink.empty()) {
    auto mtu = sandbox::ReadFileToString("/sys/class/net/" + uplink + "/mtu");
    if (mtu.ok()) n->pool_options_.mtu = std::atoi(mtu->c_str());
  }

  std::vector<uint32_t> dns;
  if (options.dns.empty()) {
    auto text = sandbox::ReadFileToString("/etc/resolv.conf");
    if (text.ok()) dns = HostResolvers(*text);
  } else {
    for (size_t i = 0; i < options.dns.size(); ++i) {
      ASSIGN_OR_RETURN(uint32_t a,
                       core::ParseIpv4Address(options.dns[i], fmt::format("network.dns[{}]", i)));
      dns.push_back(a);
    }
  }
  n->resolv_conf_ = "# Written by hutch (network mode nat).\n";
  if (dns.empty()) {
    n->resolv_conf_ +=
        "# No resolver: the host's are loopback-only or unset. Set network.dns in the hutch "
        "server's config.\n";
  }
  for (uint32_t a : dns) n->resolv_conf_ += fmt::format("nameserver {}\n", core::FormatIpv4(a));

  n->firewall_.ifname_prefix = n->pool_options_.ifname_prefix;
  n->firewall_.sandbox_nets = {subnet};
  n->firewall_.denied = sandbox::DefaultDeniedRanges();
  n->firewall_.dns = dns;

  ASSIGN_OR_RETURN(n->nft_, sandbox::Nftables::Open());
  {
    ASSIGN_OR_RETURN(sandbox::FileLock lock, sandbox::FileLock::Acquire(kNetLockPath));
    // Forwarding is host-wide. If it was off, hutch turns it on and from then on drops the
    // forwarding of anything that is not a sandbox's (guard_forwarding), so the host does not
    // start routing for its neighbours; the marker remembers that for later servers.
    // The rules, guard included, go in before forwarding is turned on: there is no moment
    // when the host forwards without them.
    ASSIGN_OR_RETURN(std::string forward, sandbox::ReadNetSysctl("ipv4/ip_forward"));
    bool turn_on = Trim(forward) == "0";
    if (turn_on) RETURN_IF_ERROR(sandbox::WriteNewFile(kForwardMarker, "", 0600));
    n->firewall_.guard_forwarding = sandbox::PathExists(kForwardMarker);
    RETURN_IF_ERROR(n->nft_->Run(sandbox::BaseRulesetScript(n->firewall_), "write base rules"));
    if (turn_on) {
      RETURN_IF_ERROR(sandbox::WriteNetSysctl("ipv4/ip_forward", "1"));
      LOG_INFO(
          "network: turned on net.ipv4.ip_forward for nat sandboxes (off again when the "
          "last one is gone)");
    }
    RETURN_IF_ERROR(n->SweepStaleSessionChains());
  }

  LocalNetwork* raw = n.get();
  n->pool_options_.before_create = [raw] { return raw->EnsureFirewall(); };
  n->pool_ = std::make_unique<sandbox::NetnsPool>(n->pool_options_);
  n->pool_->StartFilling();
  LOG_INFO("network: nat subnet {}, {} ready namespaces, mtu {}, resolvers {}", subnet.ToString(),
           options.pool_size, n->pool_options_.mtu, dns.size());
  return n;
}

Status LocalNetwork::EnsureFirewall() {
  // REQUIRES: the net lock (the pool holds it while it makes an entry). Another server may
  // have deleted the table when its last sandbox was gone; an interface must never exist
  // without the rules that cover it.
  auto tables = nft_->ListJson("list tables inet");
  if (tables.ok()) {
    bool found = false;
    if (auto* arr = tables->as_object().if_contains("nftables"); arr && arr->is_array()) {
      for (const auto& item : arr->as_array()) {
        const json::object* o = item.if_object();
        if (!o) continue;
        const json::value* t = o->if_contains("table");
        const json::value* name =
            t && t->is_object() ? t->as_object().if_contains("name") : nullptr;
        if (name && name->is_string() && name->as_string() == firewall_.table) found = true;
      }
    }
    if (found) return Status::Ok();
  }
  return nft_->Run(sandbox::BaseRulesetScript(firewall_), "write base rules");
}

Status LocalNetwork::SweepStaleSessionChains() {
  ASSIGN_OR_RETURN(json::value table,
                   nft_->ListJson(fmt::format("list table inet {}", firewall_.table)));
  const std::string& prefix = pool_options_.ifname_prefix;
  std::set<std::string> stale;
  const json::value* items = table.as_object().if_contains("nftables");
  if (!items || !items->is_array()) return Status::Ok();
  for (const auto& item : items->as_array()) {
    const json::object* o = item.if_object();
    if (!o) continue;
    if (const json::value* c = o->if_contains("chain")) {
      const json::value* name = c->as_object().if_contains("name");
      if (name && name->is_string() && name->as_string().starts_with("out-")) {
        std::string ifname = prefix + std::string(name->as_string().subview(4));
        if (!InterfaceExists(ifname)) stale.insert(ifname);
      }
    }
  }
  for (const auto& ifname : stale) {
    // Element and chain separately: a crash may have left either without the other.
    std::string chain = sandbox::SessionChainName(ifname, prefix);
    (void)nft_->Run(
        fmt::format("delete element inet {} session_out {{ \"{}\" }}\n", firewall_.table, ifname),
        "sweep");
    Status st = nft_->Run(fmt::format("delete chain inet {} {}\n", firewall_.table, chain),
                          "sweep " + chain);
    if (!st.ok() && st.code() != Code::kNotFound) return st;
    LOG_INFO("network: swept the rules of {}, whose sandbox is gone", ifname);
  }
  return Status::Ok();
}

Result<NatLease> LocalNetwork::Acquire(const std::string& session_id,
                                       const core::NetworkSpec& spec) {
  std::vector<core::Ipv4Cidr> allow, deny;
  for (size_t i = 0; i < spec.allow_out.size(); ++i) {
    ASSIGN_OR_RETURN(
        core::Ipv4Cidr c,
        core::ParseIpv4Cidr(spec.allow_out[i], fmt::format("network.allow_out[{}]", i)));
    allow.push_back(c);
  }
  for (size_t i = 0; i < spec.deny_out.size(); ++i) {
    ASSIGN_OR_RETURN(core::Ipv4Cidr c,
                     core::ParseIpv4Cidr(spec.deny_out[i], fmt::format("network.deny_out[{}]", i)));
    deny.push_back(c);
  }
  ASSIGN_OR_RETURN(sandbox::NetnsEntry entry, pool_->Take());
  NatLease lease;
  lease.network_ = this;
  lease.entry_ = std::move(entry);
  std::string script = sandbox::AddSessionRulesScript(lease.ifname(), pool_options_.ifname_prefix,
                                                      allow, deny, firewall_.table);
  if (!script.empty()) {
    RETURN_IF_ERROR(nft_->Run(script, fmt::format("rules of {}", session_id)));
    lease.has_rules_ = true;
  }
  return lease;
}

Status LocalNetwork::Release(const std::string& ifname, bool has_rules) {
  if (!ifname.starts_with(pool_options_.ifname_prefix)) {
    return InvalidArgument(fmt::format("{} is not a hutch interface", ifname));
  }
  {
    std::lock_guard<std::mutex> lock(mu_);
    // Forget the ones the kernel has removed meanwhile, so the set stays small on a server
    // that runs for months.
    std::erase_if(released_, [](const std::string& name) { return !InterfaceExists(name); });
    released_.insert(ifname);
  }
  if (!has_rules) return Status::Ok();
  Status st = nft_->Run(
      sandbox::DeleteSessionRulesScript(ifname, pool_options_.ifname_prefix, firewall_.table),
      "delete rules");
  // Gone already (a second Destroy): fine.
  if (!st.ok() && st.code() != Code::kNotFound) return st;
  return Status::Ok();
}

LocalNetwork::~LocalNetwork() {
  // Start failed before it opened nftables (a subnet that overlaps a host route): it touched
  // nothing of the host's, and there is nothing to undo (was a null dereference).
  if (!nft_) return;
  std::vector<std::string> mine = pool_ ? pool_->Drain() : std::vector<std::string>{};
  {
    std::lock_guard<std::mutex> lock(mu_);
    mine.insert(mine.end(), released_.begin(), released_.end());
  }
  // The kernel removes them once their namespaces are destroyed; give it a moment, so that the
  // check below does not mistake our own leftovers for someone's live sandbox.
  int64_t deadline = MonotonicMillis() + kReleasedGoneTimeoutMs;
  for (;;) {
    bool any = false;
    for (const auto& name : mine) any = any || InterfaceExists(name);
    if (!any) break;
    if (MonotonicMillis() >= deadline) {
      LOG_WARN("network: released interfaces still exist after {} ms", kReleasedGoneTimeoutMs);
      break;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  // Start gave up before it opened nftables (a subnet the host routes, say): it set up no
  // rules and no forwarding, so there is nothing of ours to undo.
  if (!nft_) return;
  auto lock = sandbox::FileLock::Acquire(kNetLockPath);
  if (!lock.ok()) {
    LOG_WARN("network: {}", lock.status().ToString());
    return;
  }
  auto left = HutchInterfaces(pool_options_.ifname_prefix);
  if (!left.ok() || !left->empty()) {
    if (left.ok()) LOG_INFO("network: {} nat sandboxes live on; their rules stay", left->size());
    return;
  }
  // Forwarding off before the rules go: the reverse of Start — unless the other driver's nat
  // sandboxes still need it.
  auto peers = HutchInterfaces(peer_prefix_);
  if (sandbox::PathExists(kForwardMarker) && peers.ok() && peers->empty()) {
    Status fwd = sandbox::WriteNetSysctl("ipv4/ip_forward", "0");
    if (!fwd.ok()) LOG_WARN("network: turn ip_forward off again: {}", fwd.ToString());
    unlink(kForwardMarker);
  }
  Status st = nft_->Run(sandbox::DeleteTableScript(firewall_.table), "delete table");
  if (!st.ok() && st.code() != Code::kNotFound) LOG_WARN("network: {}", st.ToString());
}

}  // namespace hutch::drivers::local
