// Network leak counting and a fake outside world for tests of network mode nat. Needs root.
//
// Nothing here sends a packet beyond this machine: every address a test uses is routed by a
// host route into a network namespace the test made (FakeWorld), and FakeWorld checks that
// route before it hands an address out.
#pragma once

#include <sys/types.h>

#include <ostream>
#include <string>
#include <vector>

namespace hutch::testing {

// Distinct network namespaces held by this process (its threads and fds: a warm pool's), its
// descendants, the processes in cgroups under `cgroup_root` (sandboxes) and nsfs bind mounts.
// Other processes are left out, so other test runs on the machine do not move the count.
int CountNetNamespaces(const std::string& cgroup_root);
// Interfaces in this (the host's) namespace whose name starts with `prefix`.
int CountInterfaces(const std::string& prefix);
// Whether nftables has table `inet <name>`; lines of `nft list ruleset`.
bool NftTableExists(const std::string& name);
int CountNftRulesetLines();

struct NetLeakSnapshot {
  int netns = 0;
  int hutch_veths = 0;
  bool hutch_table = false;
  int ruleset_lines = 0;
  std::string ip_forward;
  bool operator==(const NetLeakSnapshot&) const = default;
};
NetLeakSnapshot TakeNetLeakSnapshot(const std::string& cgroup_root);
std::ostream& operator<<(std::ostream& os, const NetLeakSnapshot& s);

// Runs a shell command; its exit status (-1 when it could not run) and its stdout.
int RunShell(const std::string& command, std::string* out = nullptr);

// A stand-in for the internet and for private networks: one network namespace, wired to the
// host by a veth on 100.127.255.0/30, holding every test target address on its loopback, with a
// host route to each. A TCP server in it answers on `port` (see Serve below).
class FakeWorld {
 public:
  // Targets: public-looking TEST-NET addresses and the private ones sandboxes must not reach.
  static constexpr const char* kInternet = "198.51.100.1";
  static constexpr const char* kInternet2 = "203.0.113.9";
  static constexpr const char* kMetadata = "169.254.169.254";
  static constexpr const char* kTen = "10.123.45.6";
  static constexpr const char* kOneNineTwo = "192.168.77.7";
  static constexpr const char* kHostSide = "100.127.255.1";  // the host's end of the link
  static constexpr const char* kWorldSide = "100.127.255.2";

  FakeWorld();
  ~FakeWorld();
  FakeWorld(const FakeWorld&) = delete;
  FakeWorld& operator=(const FakeWorld&) = delete;

  // Empty when everything was set up; else what failed (the test must stop then: without its
  // routes, traffic to the targets would leave the machine).
  const std::string& error() const { return error_; }
  const std::string& netns() const { return netns_; }
  int port() const { return port_; }
  // Runs `command` inside the world's namespace.
  int Exec(const std::string& command, std::string* out = nullptr) const;

 private:
  std::string netns_, host_if_, error_;
  std::vector<std::string> routes_;
  int port_ = 18080;
  pid_t server_ = -1;
};

// TCP connect from this process (the host's namespace) with a timeout: the controls.
bool HostCanConnect(const std::string& address, int port, int timeout_ms = 2000);

// A TCP listener of this process on `address` (0.0.0.0 for all) and an ephemeral port, that
// accepts and closes connections on a thread. Records whether any connection arrived.
class HostListener {
 public:
  explicit HostListener(const std::string& address);
  ~HostListener();
  int port() const { return port_; }
  int accepted() const;
  // Waits (up to 5 s) until at least `n` connections were accepted; the count then.
  int WaitAccepted(int n) const;

 private:
  int fd_ = -1, port_ = 0;
  struct State;
  State* state_;
};

}  // namespace hutch::testing
