#include "sandbox/step_error.h"

#include <cerrno>
#include <cstring>

namespace hutch::sandbox {

std::string StepError::ToString() const {
  if (ok()) return "ok";
  const char* name = strerrorname_np(err);
  return step + ": " + std::strerror(err) + " (" + (name ? name : std::to_string(err)) + ")";
}

StepError StepFailed(std::string step) { return StepFailed(std::move(step), errno); }

StepError StepFailed(std::string step, int err) { return StepError{std::move(step), err}; }

}  // namespace hutch::sandbox
