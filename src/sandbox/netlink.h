// A minimal rtnetlink client: the handful of link, address and route operations a sandbox's
// network needs (what `ip link add … type veth`, `ip addr add`, `ip route add default` do),
// without spawning `ip` for each. Host side: links to hutch_sandbox, uses Status.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "common/status.h"
#include "common/unique_fd.h"

namespace hutch::sandbox {

struct LinkInfo {
  int index = 0;
  std::string name;
};

struct Ipv4AddressInfo {
  int index = 0;         // interface
  uint32_t address = 0;  // host byte order
  int prefix = 0;
};

// One NETLINK_ROUTE socket. A netlink socket belongs to the network namespace it was opened in
// for its whole life: open it inside a namespace (see netns.h) to configure that namespace from
// a thread that has since left it. Not thread-safe.
class RtnlSocket {
 public:
  // Opens a socket in the calling thread's current network namespace.
  static Result<RtnlSocket> Open();

  // A veth pair: `name` here, `peer_name` created directly inside the namespace `peer_netns_fd`
  // (so it never appears here, not even briefly). mtu 0: the kernel's default.
  Status CreateVethPair(const std::string& name, const std::string& peer_name, int peer_netns_fd,
                        int mtu);
  // not_found when there is no such link.
  Result<int> LinkIndex(const std::string& name);
  Status SetLinkUp(int index);
  Status DeleteLink(int index);
  Status AddIpv4Address(int index, uint32_t address, int prefix);
  // default via `gateway` (table main).
  Status AddIpv4DefaultRoute(uint32_t gateway);
  Result<std::vector<LinkInfo>> ListLinks();
  Result<std::vector<Ipv4AddressInfo>> ListIpv4Addresses();

 private:
  explicit RtnlSocket(UniqueFd fd) : fd_(std::move(fd)) {}
  // Sends one request (NLM_F_ACK added) and waits for its ack; the kernel's errno on failure.
  Status Request(std::string msg, const std::string& what);
  // Sends a dump request and hands every answer message (nlmsghdr*) to `each`.
  template <typename F>
  Status Dump(std::string msg, const std::string& what, F&& each);

  UniqueFd fd_;
  uint32_t seq_ = 0;
};

}  // namespace hutch::sandbox
