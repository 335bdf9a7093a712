// Registers the local driver as `local` and `local-tcp` (drivers/registry.h). In an OBJECT library
// of its own so the linker keeps it: nothing refers to this file by name.
#include "drivers/local/local_driver.h"
#include "drivers/registry.h"

namespace hutch::drivers {
namespace {

const DriverRegistration kLocal("local", [](const DriverParams& params) {
  return NewLocalDriver(LocalDriverOptionsFrom(params));
});

// The same driver whose agents are reached over TCP + TLS only (LocalDriverOptions::tcp_agents):
// the proof that nothing above the driver depends on a unix socket.
const DriverRegistration kLocalTcp("local-tcp", [](const DriverParams& params) {
  LocalDriverOptions options = LocalDriverOptionsFrom(params);
  options.tcp_agents = true;
  return NewLocalDriver(options);
});

}  // namespace
}  // namespace hutch::drivers
