// The error type of the code that runs inside a new sandbox (linked into the static agent,
// so it cannot use Status, which needs fmt): the step that failed and its errno.
#pragma once

#include <string>

namespace hutch::sandbox {

struct StepError {
  std::string step;  // "mount overlay on /d/root"; empty: success
  int err = 0;

  bool ok() const { return step.empty(); }
  // "mount overlay on /d/root: Device or resource busy (EBUSY)"
  std::string ToString() const;
};

inline StepError StepOk() { return {}; }
// Captures errno at the call.
StepError StepFailed(std::string step);
StepError StepFailed(std::string step, int err);

}  // namespace hutch::sandbox
