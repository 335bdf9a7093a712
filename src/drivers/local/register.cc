// Registers the local driver as `local` (drivers/registry.h). In an OBJECT library of its own so
// the linker keeps it: nothing refers to this file by name.
#include "drivers/local/local_driver.h"
#include "drivers/registry.h"

namespace hutch::drivers {
namespace {

const DriverRegistration kLocal("local", [](const DriverParams& params) {
  return NewLocalDriver(LocalDriverOptionsFrom(params));
});

}  // namespace
}  // namespace hutch::drivers
