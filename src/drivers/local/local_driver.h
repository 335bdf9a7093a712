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

}  // namespace hutch::drivers
