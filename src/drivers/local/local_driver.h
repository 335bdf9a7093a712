// Local-driver entry points beyond drivers/driver.h's NewLocalDriver.
#pragma once

#include <memory>

#include "drivers/driver.h"
#include "sandbox/cgroup.h"

namespace hutch::drivers {

// NewLocalDriver with the cgroup layout given instead of detected: lets tests run the v2 code
// path on a host whose controllers are on v1 (cgroup2 is usually mounted there too, without
// controllers, so limits are then not enforced).
Result<std::unique_ptr<Driver>> NewLocalDriverWithCgroupLayout(const LocalDriverOptions& options,
                                                               const sandbox::CgroupLayout& layout);

// Waits up to `timeout_ms` until a local driver's background work is done (its pool of warm
// disks is full again after creates took some); whether it is. For tests that count fds and
// loop devices. Other drivers: true at once.
bool WaitForLocalDriverIdle(Driver* driver, int timeout_ms);

}  // namespace hutch::drivers
