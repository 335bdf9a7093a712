// A claim on the server's capacity (admission.h) that is released unless kept: whatever path
// leaves the code between TryClaim and the point where the claim belongs to a session record
// (an early return, a failed lookup) gives the capacity back.
#pragma once

#include <string>
#include <utility>

#include "controller/admission.h"
#include "core/session.h"

namespace hutch::controller {

class AdmissionClaim {
 public:
  AdmissionClaim() = default;
  // Claims capacity for `id` (Admission::TryClaim); an empty claim when it does not fit.
  static AdmissionClaim Try(Admission& admission, const std::string& id,
                            const core::Resources& res) {
    AdmissionClaim claim;
    if (admission.TryClaim(id, res)) {
      claim.admission_ = &admission;
      claim.id_ = id;
    }
    return claim;
  }
  AdmissionClaim(AdmissionClaim&& other) noexcept
      : admission_(std::exchange(other.admission_, nullptr)), id_(std::move(other.id_)) {}
  AdmissionClaim& operator=(AdmissionClaim&& other) noexcept {
    if (this != &other) {
      Reset();
      admission_ = std::exchange(other.admission_, nullptr);
      id_ = std::move(other.id_);
    }
    return *this;
  }
  AdmissionClaim(const AdmissionClaim&) = delete;
  AdmissionClaim& operator=(const AdmissionClaim&) = delete;
  ~AdmissionClaim() { Reset(); }

  // Whether capacity is held.
  explicit operator bool() const { return admission_ != nullptr; }
  // The capacity now belongs to the session (released when it leaves a state that holds
  // capacity); the claim forgets it.
  void Keep() { admission_ = nullptr; }
  // Releases the capacity now.
  void Reset() {
    if (admission_) std::exchange(admission_, nullptr)->Release(id_);
  }

 private:
  Admission* admission_ = nullptr;
  std::string id_;
};

}  // namespace hutch::controller
