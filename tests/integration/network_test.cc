// Network modes against the real kernel: nat sandboxes reach a fake internet and nothing
// private, the host is unreachable from them, allow_out/deny_out work, none has only loopback,
// stats move, and nothing — namespace, veth, nft rule, ip_forward — outlives the driver.
//
// Every target lives in a network namespace this test makes (testing::FakeWorld) with a host
// route into it: no packet leaves the machine. Each blocked target has a control: the host
// (a non-sandboxed namespace) reaches it, and for the private ranges an allow_out hole shows the
// sandbox's own path works once the firewall lets it. Needs root and nftables; skips without.
#include <arpa/inet.h>
#include <ifaddrs.h>
#include <net/if.h>
#include <netinet/in.h>
#include <signal.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <map>
#include <memory>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include <gtest/gtest.h>

#include "agent/client.h"
#include "common/ids.h"
#include "drivers/driver.h"
#include "drivers/local/driver_state.h"
#include "drivers/local/local_driver.h"
#include "sandbox/fs.h"
#include "testing/net_util.h"
#include "testing/test_util.h"

namespace hutch::drivers {
namespace {

using hutch::testing::FakeWorld;
using hutch::testing::HostCanConnect;
using hutch::testing::HostListener;
using hutch::testing::TakeNetLeakSnapshot;

// Connects to each address on `port` (concurrently, 1.5 s each) and prints
// "<address> ok <server's answer>" or "<address> fail <why>".
constexpr const char* kProbe = R"PY(
import socket, sys, threading
port = int(sys.argv[1]); res = {}
def probe(a):
    try:
        s = socket.create_connection((a, port), timeout=1.5)
    except Exception as e:
        res[a] = "fail " + type(e).__name__; return
    try:
        s.sendall(b"hello\n"); res[a] = ("ok " + s.recv(200).decode()).strip()
    except Exception as e:
        res[a] = "ok " + type(e).__name__
ts = [threading.Thread(target=probe, args=(a,)) for a in sys.argv[2:]]
[t.start() for t in ts]; [t.join() for t in ts]
for a in sys.argv[2:]: print(a, res[a])
)PY";

// Sends one hand-made TCP SYN out of `ifname` to dst:port, addressed to the gateway's MAC, and
// prints "synack" when the answer comes back, "nothing" when not, "no-permission" without
// CAP_NET_RAW. What a sandbox would do to reach the host's 127.0.0.1, which no socket of its own
// can address.
constexpr const char* kRawSyn = R"PY(
import socket, struct, sys, time, random
ifname, src, dst, dport, gwmac = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4]), sys.argv[5]
def csum(b):
    if len(b) % 2: b += b"\0"
    s = sum(struct.unpack("!%dH" % (len(b) // 2), b)); s = (s >> 16) + (s & 0xffff); s += s >> 16
    return ~s & 0xffff
try:
    sock = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(0x0800))
except PermissionError:
    print("no-permission"); sys.exit(0)
sock.bind((ifname, 0))
mymac = sock.getsockname()[4]
sport = random.randint(40000, 60000)
s4, d4 = socket.inet_aton(src), socket.inet_aton(dst)
tcp = struct.pack("!HHIIBBHHH", sport, dport, 1, 0, 5 << 4, 0x02, 64240, 0, 0)
tcp = tcp[:16] + struct.pack("!H", csum(s4 + d4 + struct.pack("!BBH", 0, 6, len(tcp)) + tcp)) + tcp[18:]
ip = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + len(tcp), random.randint(0, 65535), 0, 64, 6, 0, s4, d4)
ip = ip[:10] + struct.pack("!H", csum(ip)) + ip[12:]
sock.settimeout(0.2)
sock.send(bytes.fromhex(gwmac.replace(":", "")) + mymac + b"\x08\x00" + ip + tcp)
deadline = time.time() + 2
while time.time() < deadline:
    try: f = sock.recv(2048)
    except socket.timeout: continue
    if len(f) < 54 or f[12:14] != b"\x08\x00" or f[23] != 6: continue
    t = f[14 + (f[14] & 0xf) * 4:]
    sp, dp = struct.unpack("!HH", t[:4])
    if sp == dport and dp == sport and (t[13] & 0x12) == 0x12:
        print("synack"); sys.exit(0)
print("nothing")
)PY";

std::string Quote(const std::string& s) {
  std::string out = "'";
  for (char c : s) {
    if (c == '\'')
      out += "'\\''";
    else
      out += c;
  }
  return out + "'";
}

// The host's own IPv4 addresses other than loopback, hutch's and the fake world's.
std::vector<std::string> HostAddresses() {
  std::vector<std::string> out;
  ifaddrs* list = nullptr;
  if (getifaddrs(&list) != 0) return out;
  for (ifaddrs* a = list; a; a = a->ifa_next) {
    if (!a->ifa_addr || a->ifa_addr->sa_family != AF_INET) continue;
    std::string name = a->ifa_name;
    if (name == "lo" || name.starts_with("hutch-") || name.starts_with("htw")) continue;
    char buf[INET_ADDRSTRLEN];
    inet_ntop(AF_INET, &reinterpret_cast<sockaddr_in*>(a->ifa_addr)->sin_addr, buf, sizeof buf);
    out.push_back(buf);
  }
  freeifaddrs(list);
  return out;
}

class NetworkTest : public ::testing::Test {
 protected:
  void SetUp() override {
    if (!hutch::testing::IsRoot()) GTEST_SKIP() << "needs root (namespaces, nftables)";
    if (hutch::testing::RunShell("nft list tables >/dev/null 2>&1") != 0)
      GTEST_SKIP() << "needs nftables (scripts/setup installs it)";
    if (hutch::testing::NftTableExists("hutch") || hutch::testing::CountInterfaces("hutch-") > 0)
      GTEST_SKIP() << "another hutch on this machine has nat sandboxes: the leak counts would "
                      "include them";
    world_ = std::make_unique<FakeWorld>();
    ASSERT_EQ(world_->error(), "") << "the fake world is not set up: no sandbox traffic is sent";
    cgroup_root_ = NewId("hutch-test");
    before_ = TakeNetLeakSnapshot(cgroup_root_);
    auto driver = MakeDriver();
    ASSERT_TRUE(driver.ok()) << driver.status().ToString();
    driver_ = std::move(*driver);
  }

  void TearDown() override {
    if (driver_) {
      for (const auto& [id, state] : live_) {
        Status st = driver_->Destroy(id, state);
        EXPECT_TRUE(st.ok()) << id << ": " << st.ToString();
      }
      live_.clear();
      driver_.reset();
      // The leak check of every test: the driver gave everything back.
      EXPECT_EQ(TakeNetLeakSnapshot(cgroup_root_), before_);
    }
    for (const auto& h : hutch::testing::CgroupHierarchies())
      rmdir((h + "/" + cgroup_root_).c_str());
    world_.reset();
  }

  Result<std::unique_ptr<Driver>> MakeDriver() {
    LocalDriverOptions opts;
    opts.data_dir = dir_.path() + "/data";
    opts.agent_path = HUTCH_AGENT_BINARY;
    opts.cgroup_root_name = cgroup_root_;
    opts.nat.pool_size = 2;
    // A resolver inside the fake world: nothing a sandbox might look up leaves the machine.
    opts.nat.dns = {"198.51.100.53"};
    return NewLocalDriver(opts);
  }

  std::string Create(core::NetworkSpec network, SandboxSpec spec = {}) {
    spec.session_id = NewId("ses");
    spec.image = "host";
    spec.network = std::move(network);
    auto state = driver_->Create(spec);
    EXPECT_TRUE(state.ok()) << state.status().ToString();
    if (!state.ok()) return "";
    live_.emplace_back(spec.session_id, *state);
    return spec.session_id;
  }
  std::string CreateNat(std::vector<std::string> allow = {}, std::vector<std::string> deny = {}) {
    return Create(core::NetworkSpec{"nat", std::move(allow), std::move(deny)});
  }

  const std::string& StateOf(const std::string& id) {
    for (const auto& [i, s] : live_)
      if (i == id) return s;
    static const std::string kNone;
    return kNone;
  }
  local::LocalSandboxState ParsedState(const std::string& id) {
    auto s = local::DecodeState(StateOf(id));
    return s.ok() ? *s : local::LocalSandboxState{};
  }

  core::ExecResult Exec(const std::string& id, const std::string& script,
                        int64_t timeout_ms = 30000) {
    core::ExecRequest r;
    r.argv = {"/bin/sh", "-c", script};
    r.timeout_ms = timeout_ms;
    auto res = driver_->Exec(id, StateOf(id), r);
    EXPECT_TRUE(res.ok()) << res.status().ToString();
    return res.ok() ? *res : core::ExecResult{};
  }

  // address → "ok …" / "fail …" as seen from the sandbox.
  std::map<std::string, std::string> Probe(const std::string& id, int port,
                                           const std::vector<std::string>& addrs) {
    std::string cmd = "python3 -c " + Quote(kProbe) + " " + std::to_string(port);
    for (const auto& a : addrs) cmd += " " + a;
    core::ExecResult r = Exec(id, cmd);
    EXPECT_EQ(r.exit_code, 0) << r.stderr_data;
    std::map<std::string, std::string> out;
    std::istringstream lines(r.stdout_data);
    std::string line;
    while (std::getline(lines, line)) {
      size_t sp = line.find(' ');
      if (sp != std::string::npos) out[line.substr(0, sp)] = line.substr(sp + 1);
    }
    return out;
  }

  std::unique_ptr<FakeWorld> world_;
  hutch::testing::NetLeakSnapshot before_;
  hutch::testing::TempDir dir_{"hutch-net-test"};
  std::string cgroup_root_;
  std::unique_ptr<Driver> driver_;
  std::vector<std::pair<std::string, std::string>> live_;
};

bool Ok(const std::string& result) { return result.starts_with("ok"); }
// A dropped connection: no answer at all, so the connect times out (a refusal would mean
// something answered).
const std::string kBlocked = "fail TimeoutError";

TEST_F(NetworkTest, NatReachesTheInternetAndNoPrivateRange) {
  int port = world_->port();
  // Controls: every target answers from a namespace that is not a sandbox (the host's).
  for (const char* a : {FakeWorld::kInternet, FakeWorld::kInternet2, FakeWorld::kMetadata,
                        FakeWorld::kTen, FakeWorld::kOneNineTwo}) {
    EXPECT_TRUE(HostCanConnect(a, port)) << "control: " << a << " is not reachable at all";
  }
  std::string id = CreateNat();
  ASSERT_FALSE(id.empty());
  auto r = Probe(id, port,
                 {FakeWorld::kInternet, FakeWorld::kInternet2, FakeWorld::kMetadata,
                  FakeWorld::kTen, FakeWorld::kOneNineTwo});
  // Egress works, masqueraded behind the host's address on the way out.
  EXPECT_EQ(r[FakeWorld::kInternet],
            std::string("ok ok ") + FakeWorld::kInternet + " " + FakeWorld::kHostSide);
  EXPECT_EQ(r[FakeWorld::kInternet2],
            std::string("ok ok ") + FakeWorld::kInternet2 + " " + FakeWorld::kHostSide);
  // Cloud metadata, 10/8 and 192.168/16: dropped (a timeout, not a refusal).
  EXPECT_EQ(r[FakeWorld::kMetadata], kBlocked);
  EXPECT_EQ(r[FakeWorld::kTen], kBlocked);
  EXPECT_EQ(r[FakeWorld::kOneNineTwo], kBlocked);
}

TEST_F(NetworkTest, NatSandboxSeesEth0WithoutIpv6AndTheConfiguredResolver) {
  std::string id = CreateNat();
  ASSERT_FALSE(id.empty());
  auto state = ParsedState(id);
  EXPECT_TRUE(state.veth.starts_with("hutch-")) << state.veth;
  core::ExecResult r = Exec(id, "cat /proc/net/dev");
  EXPECT_NE(r.stdout_data.find("eth0:"), std::string::npos) << r.stdout_data;
  EXPECT_NE(r.stdout_data.find("lo:"), std::string::npos);
  EXPECT_EQ(std::count(r.stdout_data.begin(), r.stdout_data.end(), '\n'), 4) << r.stdout_data;
  r = Exec(id, "ip -4 -o addr show dev eth0; ip route");
  EXPECT_NE(r.stdout_data.find("inet " + state.address + "/30"), std::string::npos)
      << r.stdout_data;
  EXPECT_NE(r.stdout_data.find("default via "), std::string::npos) << r.stdout_data;
  // No IPv6 address on eth0, and no IPv6 route out.
  r = Exec(id, "cat /proc/net/if_inet6; ip -6 route");
  EXPECT_EQ(r.stdout_data.find("eth0"), std::string::npos) << r.stdout_data;
  EXPECT_EQ(Exec(id, "cat /etc/resolv.conf").stdout_data,
            "# Written by hutch (network mode nat).\nnameserver 198.51.100.53\n");
}

TEST_F(NetworkTest, NatSandboxCannotReachTheHost) {
  std::string id = CreateNat();
  ASSERT_FALSE(id.empty());
  auto state = ParsedState(id);
  std::string gateway =
      state.address.substr(0, state.address.rfind('.')) + "." +
      std::to_string(std::stoi(state.address.substr(state.address.rfind('.') + 1)) - 1);
  HostListener any("0.0.0.0");
  ASSERT_GT(any.port(), 0);
  // Controls: the listener answers on the sandbox's gateway address and on the host's own
  // addresses, from the host and from another namespace (the fake world, a neighbour).
  EXPECT_TRUE(HostCanConnect(gateway, any.port()));
  std::vector<std::string> targets = {gateway};
  for (const auto& a : HostAddresses()) {
    EXPECT_TRUE(HostCanConnect(a, any.port())) << a;
    targets.push_back(a);
  }
  EXPECT_EQ(world_->Exec("python3 -c " +
                         Quote("import socket,sys; socket.create_connection((sys.argv[1], "
                               "int(sys.argv[2])), timeout=2)") +
                         " " + FakeWorld::kHostSide + " " + std::to_string(any.port())),
            0)
      << "control: the host's listener is not reachable from another namespace";
  int controls = static_cast<int>(targets.size()) + 1;
  ASSERT_EQ(any.WaitAccepted(controls), controls);
  int accepted = any.accepted();
  auto r = Probe(id, any.port(), targets);
  for (const auto& t : targets) EXPECT_EQ(r[t], kBlocked) << t;
  std::this_thread::sleep_for(std::chrono::milliseconds(100));
  EXPECT_EQ(any.accepted(), accepted) << "a sandbox connection reached the host";
}

TEST_F(NetworkTest, NatSandboxCannotReachTheHostsLoopbackWithCraftedPackets) {
  std::string id = CreateNat();
  ASSERT_FALSE(id.empty());
  auto state = ParsedState(id);
  auto mac = sandbox::ReadFileToString("/sys/class/net/" + state.veth + "/address");
  ASSERT_TRUE(mac.ok());
  std::string gw_mac = mac->substr(0, mac->find('\n'));
  HostListener loopback("127.0.0.1");
  ASSERT_GT(loopback.port(), 0);
  ASSERT_TRUE(HostCanConnect("127.0.0.1", loopback.port())) << "control: no loopback listener";
  ASSERT_EQ(loopback.WaitAccepted(1), 1);
  int accepted = loopback.accepted();
  auto raw_syn = [&](const std::string& dst, int port) {
    core::ExecResult r = Exec(id, "python3 -c " + Quote(kRawSyn) + " eth0 " + state.address + " " +
                                      dst + " " + std::to_string(port) + " " + gw_mac);
    EXPECT_EQ(r.exit_code, 0) << r.stderr_data;
    return r.stdout_data;
  };
  // Control: the technique works — a crafted SYN to an allowed address is answered.
  std::string control = raw_syn(FakeWorld::kInternet, world_->port());
  if (control == "no-permission\n") GTEST_SKIP() << "the sandbox has no CAP_NET_RAW";
  ASSERT_EQ(control, "synack\n");
  // The attack: the same SYN to the host's 127.0.0.1.
  EXPECT_EQ(raw_syn("127.0.0.1", loopback.port()), "nothing\n");
  std::this_thread::sleep_for(std::chrono::milliseconds(100));
  EXPECT_EQ(loopback.accepted(), accepted);
}

TEST_F(NetworkTest, AllowOutPunchesAHoleAndDenyOutClosesOne) {
  int port = world_->port();
  std::string open = CreateNat({std::string(FakeWorld::kTen) + "/32", "169.254.0.0/16"});
  std::string closed = CreateNat({}, {"198.51.100.0/24"});
  ASSERT_FALSE(open.empty() || closed.empty());
  auto r = Probe(open, port, {FakeWorld::kTen, FakeWorld::kMetadata, FakeWorld::kOneNineTwo});
  EXPECT_TRUE(Ok(r[FakeWorld::kTen])) << r[FakeWorld::kTen];
  EXPECT_TRUE(Ok(r[FakeWorld::kMetadata])) << r[FakeWorld::kMetadata];
  EXPECT_EQ(r[FakeWorld::kOneNineTwo], kBlocked);  // not in the list: still denied
  r = Probe(closed, port, {FakeWorld::kInternet, FakeWorld::kInternet2, FakeWorld::kTen});
  EXPECT_EQ(r[FakeWorld::kInternet], kBlocked);
  EXPECT_TRUE(Ok(r[FakeWorld::kInternet2])) << r[FakeWorld::kInternet2];
  EXPECT_EQ(r[FakeWorld::kTen], kBlocked);
}

TEST_F(NetworkTest, NatSandboxesCannotReachEachOther) {
  std::string a = CreateNat();
  std::string b = CreateNat({"10.0.0.0/8"});  // even a hole for 10/8 does not open sandboxes
  ASSERT_FALSE(a.empty() || b.empty());
  ASSERT_EQ(
      Exec(a,
           "python3 -c " +
               Quote("import socket,os\ns=socket.socket()\ns.bind(('0.0.0.0',7000))\n"
                     "s.listen()\nif os.fork(): os._exit(0)\nwhile True: s.accept()[0].close()") +
               " </dev/null >/dev/null 2>&1")
          .exit_code,
      0);
  std::string addr_a = ParsedState(a).address;
  // Control: a's server answers on a's address from inside a.
  EXPECT_TRUE(Ok(Probe(a, 7000, {addr_a})[addr_a]));
  EXPECT_EQ(Probe(b, 7000, {addr_a})[addr_a], kBlocked);
}

TEST_F(NetworkTest, NoneModeHasOnlyLoopback) {
  std::string id = Create(core::NetworkSpec{});
  ASSERT_FALSE(id.empty());
  core::ExecResult r = Exec(id, "cat /proc/net/dev");
  EXPECT_NE(r.stdout_data.find("lo:"), std::string::npos);
  EXPECT_EQ(std::count(r.stdout_data.begin(), r.stdout_data.end(), '\n'), 3) << r.stdout_data;
  EXPECT_TRUE(ParsedState(id).veth.empty());
  auto p = Probe(id, world_->port(), {FakeWorld::kInternet});
  EXPECT_TRUE(p[FakeWorld::kInternet].starts_with("fail")) << p[FakeWorld::kInternet];
  // And mode none never started the nat machinery.
  EXPECT_FALSE(hutch::testing::NftTableExists("hutch"));
}

TEST_F(NetworkTest, StatsMove) {
  SandboxSpec spec;
  spec.resources.memory_mb = 512;
  std::string id = Create(core::NetworkSpec{"nat", {}, {}}, spec);
  ASSERT_FALSE(id.empty());
  auto s0 = driver_->Stats(id, StateOf(id));
  ASSERT_TRUE(s0.ok()) << s0.status().ToString();
  ASSERT_TRUE(s0->network.has_value());
  EXPECT_EQ(s0->memory_limit_bytes, int64_t{512} << 20);

  // CPU: a second of busy loop.
  Exec(id, "timeout 1 sh -c 'while :; do :; done'; true");
  // Memory: 64 MiB held by a background process while we look.
  ASSERT_EQ(Exec(id,
                 "python3 -c 'import os,time\nx=bytearray(64<<20)\nfor i in "
                 "range(0,len(x),4096): x[i]=1\nif os.fork(): os._exit(0)\ntime.sleep(60)' "
                 "</dev/null >/dev/null 2>&1")
                .exit_code,
            0);
  // Disk: 8 MiB in the writable layer.
  ASSERT_EQ(Exec(id, "head -c 8M /dev/urandom > /root/blob && sync").exit_code, 0);
  // Network: 1 MiB from the fake internet.
  core::ExecResult dl = Exec(
      id, "python3 -c " +
              Quote("import socket,sys\ns=socket.create_connection((sys.argv[1],int(sys.argv[2])),"
                    "timeout=5)\ns.sendall(b'big 1048576\\n')\nn=0\nwhile True:\n d=s.recv(65536)\n"
                    " if not d: break\n n+=len(d)\nprint(n)") +
              " " + FakeWorld::kInternet + " " + std::to_string(world_->port()));
  ASSERT_EQ(dl.stdout_data, "1048576\n") << dl.stderr_data;
  // Memory is sampled while the holder lives.
  std::this_thread::sleep_for(std::chrono::milliseconds(100));
  auto s1 = driver_->Stats(id, StateOf(id));
  ASSERT_TRUE(s1.ok()) << s1.status().ToString();
  EXPECT_GE(s1->cpu_seconds - s0->cpu_seconds, 0.5);
  EXPECT_GE(s1->memory_bytes, int64_t{64} << 20);
  EXPECT_GE(s1->memory_peak_bytes, s1->memory_bytes);
  EXPECT_GE(s1->pids, 2);  // the agent and the holder
  EXPECT_GE(s1->pids_limit, 1);
  EXPECT_GE(s1->disk_bytes - s0->disk_bytes, int64_t{8} << 20);
  EXPECT_FALSE(s1->disk_bytes_partial);
  ASSERT_TRUE(s1->network.has_value());
  EXPECT_GE(s1->network->rx_bytes - s0->network->rx_bytes, int64_t{1} << 20);
  EXPECT_GT(s1->network->tx_bytes, s0->network->tx_bytes);
  EXPECT_GT(s1->network->rx_packets, s0->network->rx_packets);

  // Mode none: the same numbers, no network.
  std::string none = Create(core::NetworkSpec{});
  auto sn = driver_->Stats(none, StateOf(none));
  ASSERT_TRUE(sn.ok()) << sn.status().ToString();
  EXPECT_FALSE(sn->network.has_value());
  EXPECT_GT(sn->memory_bytes, 0);
  // A sandbox that is gone has no stats.
  std::string state = StateOf(none);
  ASSERT_TRUE(driver_->Destroy(none, state).ok());
  std::erase_if(live_, [&](const auto& p) { return p.first == none; });
  EXPECT_EQ(driver_->Stats(none, state).status().code(), Code::kNotFound);
}

TEST_F(NetworkTest, RulesOfASessionGoWithIt) {
  std::string id = CreateNat({}, {"198.51.100.0/24"});
  ASSERT_FALSE(id.empty());
  std::string chain = "out-" + ParsedState(id).veth.substr(6);
  std::string out;
  hutch::testing::RunShell("nft list table inet hutch", &out);
  EXPECT_NE(out.find("chain " + chain), std::string::npos) << out;
  ASSERT_TRUE(driver_->Destroy(id, StateOf(id)).ok());
  std::erase_if(live_, [&](const auto& p) { return p.first == id; });
  hutch::testing::RunShell("nft list table inet hutch", &out);
  EXPECT_EQ(out.find(chain), std::string::npos) << out;
}

// A driver that stops while a nat sandbox lives keeps the firewall (the sandbox depends on it);
// a sandbox that dies while no server runs leaves a stale session chain, which the next
// driver sweeps; once every sandbox is gone, the last driver leaves nothing.
TEST_F(NetworkTest, RulesOutliveTheDriverWhileASandboxLivesAndStaleOnesAreSwept) {
  std::string keep = CreateNat({}, {"203.0.113.0/24"});
  std::string dies = CreateNat({}, {"198.51.100.0/24"});
  ASSERT_FALSE(keep.empty() || dies.empty());
  auto dies_state = ParsedState(dies);
  driver_.reset();
  EXPECT_TRUE(hutch::testing::NftTableExists("hutch"));
  // Still filtered with no server running: its agent answers directly.
  {
    core::ExecRequest req;
    req.argv = {"python3",
                "-c",
                kProbe,
                std::to_string(world_->port()),
                FakeWorld::kInternet,
                FakeWorld::kInternet2,
                FakeWorld::kTen};
    req.timeout_ms = 30000;
    auto r = agent::ExecOnAgent(
        *agent::NewUnixTransport(ParsedState(keep).socket_path, keep, ParsedState(keep).secret),
        req);
    ASSERT_TRUE(r.ok()) << r.status().ToString();
    EXPECT_NE(r->stdout_data.find(std::string(FakeWorld::kInternet) + " ok"), std::string::npos)
        << r->stdout_data;
    EXPECT_NE(r->stdout_data.find(std::string(FakeWorld::kInternet2) + " " + kBlocked),
              std::string::npos)
        << r->stdout_data;
    EXPECT_NE(r->stdout_data.find(std::string(FakeWorld::kTen) + " " + kBlocked), std::string::npos)
        << r->stdout_data;
  }
  // `dies` dies while no server runs.
  ASSERT_EQ(kill(dies_state.agent_pid, SIGKILL), 0);
  for (int i = 0; i < 500 && hutch::testing::CountInterfaces(dies_state.veth) > 0; ++i)
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  ASSERT_EQ(hutch::testing::CountInterfaces(dies_state.veth), 0);
  std::string out;
  hutch::testing::RunShell("nft list table inet hutch", &out);
  ASSERT_NE(out.find("out-" + dies_state.veth.substr(6)), std::string::npos);

  auto driver = MakeDriver();
  ASSERT_TRUE(driver.ok()) << driver.status().ToString();
  driver_ = std::move(*driver);
  // The next nat use starts the network, which sweeps.
  std::string fresh = CreateNat();
  ASSERT_FALSE(fresh.empty());
  hutch::testing::RunShell("nft list table inet hutch", &out);
  EXPECT_EQ(out.find("out-" + dies_state.veth.substr(6)), std::string::npos) << out;
  EXPECT_NE(out.find("out-" + ParsedState(keep).veth.substr(6)), std::string::npos) << out;
  // TearDown destroys all three (dies: already dead, Destroy is idempotent) and checks leaks.
}

}  // namespace
}  // namespace hutch::drivers
