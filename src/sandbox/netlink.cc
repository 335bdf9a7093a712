#include "sandbox/netlink.h"

#include <arpa/inet.h>
#include <linux/if.h>
#include <linux/if_addr.h>
#include <linux/if_link.h>
#include <linux/netlink.h>
#include <linux/rtnetlink.h>
#include <linux/veth.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include <fmt/format.h>

namespace hutch::sandbox {

namespace {

// Builds one netlink message: a header, a fixed payload, then attributes, nested ones included.
class MessageBuilder {
 public:
  MessageBuilder(uint16_t type, uint16_t flags) {
    nlmsghdr h{};
    h.nlmsg_type = type;
    h.nlmsg_flags = static_cast<uint16_t>(flags | NLM_F_REQUEST);
    Append(&h, sizeof h);
  }

  template <typename T>
  void Payload(const T& t) {
    Append(&t, sizeof t);
  }

  void Attr(uint16_t type, const void* data, size_t len) {
    nlattr a{};
    a.nla_type = type;
    a.nla_len = static_cast<uint16_t>(NLA_HDRLEN + len);
    Append(&a, sizeof a);
    Append(data, len);
  }
  void AttrString(uint16_t type, const std::string& s) { Attr(type, s.c_str(), s.size() + 1); }
  void AttrU32(uint16_t type, uint32_t v) { Attr(type, &v, sizeof v); }

  // Begin/End bracket a nested attribute; End patches its length.
  size_t Begin(uint16_t type) {
    size_t at = buf_.size();
    nlattr a{};
    a.nla_type = type;
    Append(&a, sizeof a);
    return at;
  }
  void End(size_t at) {
    uint16_t len = static_cast<uint16_t>(buf_.size() - at);
    memcpy(buf_.data() + at + offsetof(nlattr, nla_len), &len, sizeof len);
  }

  std::string Take(uint32_t seq) {
    nlmsghdr* h = reinterpret_cast<nlmsghdr*>(buf_.data());
    h->nlmsg_len = static_cast<uint32_t>(buf_.size());
    h->nlmsg_seq = seq;
    return std::move(buf_);
  }

 private:
  // Every piece is padded to NLMSG_ALIGNTO (4), as netlink requires.
  void Append(const void* data, size_t len) {
    buf_.append(static_cast<const char*>(data), len);
    buf_.resize(NLMSG_ALIGN(buf_.size()), '\0');
  }
  std::string buf_;
};

std::string ErrnoName(int err) {
  const char* name = strerrorname_np(err);
  return fmt::format("{} ({})", strerror(err), name ? name : "?");
}

// The attributes after a fixed payload of `fixed` bytes.
template <typename F>
void ForEachAttr(const nlmsghdr* h, size_t fixed, F&& f) {
  const char* p = reinterpret_cast<const char*>(NLMSG_DATA(h)) + NLMSG_ALIGN(fixed);
  const char* end = reinterpret_cast<const char*>(h) + h->nlmsg_len;
  while (p + sizeof(nlattr) <= end) {
    const nlattr* a = reinterpret_cast<const nlattr*>(p);
    if (a->nla_len < sizeof(nlattr) || p + a->nla_len > end) break;
    f(static_cast<uint16_t>(a->nla_type & NLA_TYPE_MASK), p + NLA_HDRLEN,
      static_cast<size_t>(a->nla_len - NLA_HDRLEN));
    p += NLA_ALIGN(a->nla_len);
  }
}

}  // namespace

Result<RtnlSocket> RtnlSocket::Open() {
  UniqueFd fd(socket(AF_NETLINK, SOCK_RAW | SOCK_CLOEXEC, NETLINK_ROUTE));
  if (!fd) return ErrnoError("socket(NETLINK_ROUTE)", errno);
  sockaddr_nl addr{};
  addr.nl_family = AF_NETLINK;
  if (bind(fd.get(), reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0)
    return ErrnoError("bind netlink socket", errno);
  // Extended acks carry the kernel's own reason ("Attribute failed policy validation").
  int one = 1;
  (void)setsockopt(fd.get(), SOL_NETLINK, NETLINK_EXT_ACK, &one, sizeof one);
  return RtnlSocket(std::move(fd));
}

Status RtnlSocket::Request(std::string msg, const std::string& what) {
  uint32_t seq = ++seq_;
  reinterpret_cast<nlmsghdr*>(msg.data())->nlmsg_flags |= NLM_F_ACK;
  reinterpret_cast<nlmsghdr*>(msg.data())->nlmsg_seq = seq;
  for (;;) {
    if (send(fd_.get(), msg.data(), msg.size(), 0) >= 0) break;
    if (errno != EINTR) return ErrnoError(what + ": netlink send", errno);
  }
  alignas(nlmsghdr) char buf[8192];
  for (;;) {
    ssize_t n = recv(fd_.get(), buf, sizeof buf, 0);
    if (n < 0) {
      if (errno == EINTR) continue;
      return ErrnoError(what + ": netlink recv", errno);
    }
    size_t len = static_cast<size_t>(n);
    for (nlmsghdr* h = reinterpret_cast<nlmsghdr*>(buf); NLMSG_OK(h, len); h = NLMSG_NEXT(h, len)) {
      if (h->nlmsg_seq != seq || h->nlmsg_type != NLMSG_ERROR) continue;
      const nlmsgerr* e = static_cast<const nlmsgerr*>(NLMSG_DATA(h));
      if (e->error == 0) return Status::Ok();
      int err = -e->error;
      return Status(err == EEXIST   ? Code::kConflict
                    : err == ENODEV ? Code::kNotFound
                                    : Code::kInternal,
                    fmt::format("{}: {}", what, ErrnoName(err)));
    }
  }
}

template <typename F>
Status RtnlSocket::Dump(std::string msg, const std::string& what, F&& each) {
  uint32_t seq = ++seq_;
  reinterpret_cast<nlmsghdr*>(msg.data())->nlmsg_flags |= NLM_F_DUMP;
  reinterpret_cast<nlmsghdr*>(msg.data())->nlmsg_seq = seq;
  for (;;) {
    if (send(fd_.get(), msg.data(), msg.size(), 0) >= 0) break;
    if (errno != EINTR) return ErrnoError(what + ": netlink send", errno);
  }
  alignas(nlmsghdr) char buf[32768];
  for (;;) {
    ssize_t n = recv(fd_.get(), buf, sizeof buf, 0);
    if (n < 0) {
      if (errno == EINTR) continue;
      return ErrnoError(what + ": netlink recv", errno);
    }
    size_t len = static_cast<size_t>(n);
    for (nlmsghdr* h = reinterpret_cast<nlmsghdr*>(buf); NLMSG_OK(h, len); h = NLMSG_NEXT(h, len)) {
      if (h->nlmsg_seq != seq) continue;
      if (h->nlmsg_type == NLMSG_DONE) return Status::Ok();
      if (h->nlmsg_type == NLMSG_ERROR) {
        int err = -static_cast<const nlmsgerr*>(NLMSG_DATA(h))->error;
        if (err == 0) return Status::Ok();
        // EINTR here means the dump was interrupted by a change; callers may retry.
        return Internal(fmt::format("{}: {}", what, ErrnoName(err)));
      }
      each(h);
    }
  }
}

Status RtnlSocket::CreateVethPair(const std::string& name, const std::string& peer_name,
                                  int peer_netns_fd, int mtu) {
  MessageBuilder m(RTM_NEWLINK, NLM_F_CREATE | NLM_F_EXCL);
  ifinfomsg ifi{};
  ifi.ifi_family = AF_UNSPEC;
  m.Payload(ifi);
  m.AttrString(IFLA_IFNAME, name);
  if (mtu > 0) m.AttrU32(IFLA_MTU, static_cast<uint32_t>(mtu));
  size_t linkinfo = m.Begin(IFLA_LINKINFO);
  m.AttrString(IFLA_INFO_KIND, "veth");
  size_t data = m.Begin(IFLA_INFO_DATA);
  size_t peer = m.Begin(VETH_INFO_PEER);
  // The peer's attributes follow an ifinfomsg of its own.
  m.Payload(ifi);
  m.AttrString(IFLA_IFNAME, peer_name);
  if (mtu > 0) m.AttrU32(IFLA_MTU, static_cast<uint32_t>(mtu));
  m.AttrU32(IFLA_NET_NS_FD, static_cast<uint32_t>(peer_netns_fd));
  m.End(peer);
  m.End(data);
  m.End(linkinfo);
  return Request(m.Take(0), fmt::format("create veth {} (peer {})", name, peer_name));
}

Result<int> RtnlSocket::LinkIndex(const std::string& name) {
  // RTM_GETLINK by name answers with the link, not an ack; a dump filtered by us is simpler
  // and the number of links is small.
  ASSIGN_OR_RETURN(std::vector<LinkInfo> links, ListLinks());
  for (const auto& l : links) {
    if (l.name == name) return l.index;
  }
  return NotFound(fmt::format("no network interface {}", name));
}

Status RtnlSocket::SetLinkUp(int index) {
  MessageBuilder m(RTM_NEWLINK, 0);
  ifinfomsg ifi{};
  ifi.ifi_family = AF_UNSPEC;
  ifi.ifi_index = index;
  ifi.ifi_flags = IFF_UP;
  ifi.ifi_change = IFF_UP;
  m.Payload(ifi);
  return Request(m.Take(0), fmt::format("set link {} up", index));
}

Status RtnlSocket::DeleteLink(int index) {
  MessageBuilder m(RTM_DELLINK, 0);
  ifinfomsg ifi{};
  ifi.ifi_family = AF_UNSPEC;
  ifi.ifi_index = index;
  m.Payload(ifi);
  return Request(m.Take(0), fmt::format("delete link {}", index));
}

Status RtnlSocket::AddIpv4Address(int index, uint32_t address, int prefix) {
  MessageBuilder m(RTM_NEWADDR, NLM_F_CREATE | NLM_F_EXCL);
  ifaddrmsg ifa{};
  ifa.ifa_family = AF_INET;
  ifa.ifa_prefixlen = static_cast<unsigned char>(prefix);
  ifa.ifa_scope = RT_SCOPE_UNIVERSE;
  ifa.ifa_index = static_cast<uint32_t>(index);
  m.Payload(ifa);
  uint32_t be = htonl(address);
  m.Attr(IFA_LOCAL, &be, sizeof be);
  m.Attr(IFA_ADDRESS, &be, sizeof be);
  return Request(m.Take(0), fmt::format("add address to link {}", index));
}

Status RtnlSocket::AddIpv4DefaultRoute(uint32_t gateway) {
  MessageBuilder m(RTM_NEWROUTE, NLM_F_CREATE | NLM_F_EXCL);
  rtmsg rt{};
  rt.rtm_family = AF_INET;
  rt.rtm_dst_len = 0;
  rt.rtm_table = RT_TABLE_MAIN;
  rt.rtm_protocol = RTPROT_BOOT;
  rt.rtm_scope = RT_SCOPE_UNIVERSE;
  rt.rtm_type = RTN_UNICAST;
  m.Payload(rt);
  uint32_t be = htonl(gateway);
  m.Attr(RTA_GATEWAY, &be, sizeof be);
  return Request(m.Take(0), "add default route");
}

Result<std::vector<LinkInfo>> RtnlSocket::ListLinks() {
  MessageBuilder m(RTM_GETLINK, 0);
  ifinfomsg ifi{};
  ifi.ifi_family = AF_UNSPEC;
  m.Payload(ifi);
  std::vector<LinkInfo> out;
  RETURN_IF_ERROR(Dump(m.Take(0), "list links", [&](const nlmsghdr* h) {
    if (h->nlmsg_type != RTM_NEWLINK) return;
    const ifinfomsg* info = static_cast<const ifinfomsg*>(NLMSG_DATA(h));
    LinkInfo l;
    l.index = info->ifi_index;
    ForEachAttr(h, sizeof(ifinfomsg), [&](uint16_t type, const char* data, size_t len) {
      if (type == IFLA_IFNAME) l.name.assign(data, strnlen(data, len));
    });
    out.push_back(std::move(l));
  }));
  return out;
}

Result<std::vector<Ipv4AddressInfo>> RtnlSocket::ListIpv4Addresses() {
  MessageBuilder m(RTM_GETADDR, 0);
  ifaddrmsg ifa{};
  ifa.ifa_family = AF_INET;
  m.Payload(ifa);
  std::vector<Ipv4AddressInfo> out;
  RETURN_IF_ERROR(Dump(m.Take(0), "list addresses", [&](const nlmsghdr* h) {
    if (h->nlmsg_type != RTM_NEWADDR) return;
    const ifaddrmsg* info = static_cast<const ifaddrmsg*>(NLMSG_DATA(h));
    if (info->ifa_family != AF_INET) return;
    Ipv4AddressInfo a;
    a.index = static_cast<int>(info->ifa_index);
    a.prefix = info->ifa_prefixlen;
    ForEachAttr(h, sizeof(ifaddrmsg), [&](uint16_t type, const char* data, size_t len) {
      if ((type == IFA_LOCAL || (type == IFA_ADDRESS && a.address == 0)) && len == 4) {
        uint32_t be;
        memcpy(&be, data, 4);
        a.address = ntohl(be);
      }
    });
    out.push_back(a);
  }));
  return out;
}

}  // namespace hutch::sandbox
