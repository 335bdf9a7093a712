// Who is asking: the authenticated caller of a request. Every handler receives one and every
// ownership check goes through it.
#pragma once

#include <string>
#include <vector>

namespace hutch::core {

struct Principal {
  std::string user_id;   // "admin" for the bootstrap admin
  std::string token_id;  // the token used; never the token itself
  bool admin = false;    // admins see and act on every user's objects
  std::vector<std::string> scopes;

  // The owner filter for reads: empty (everyone's) for admins, else the caller's own.
  std::string OwnerFilter() const { return admin ? std::string() : user_id; }
};

}  // namespace hutch::core
