// Who is asking: the authenticated caller of a request. Every handler receives one and every
// ownership check goes through it: objects are looked up with OwnerFilter(), so another user's
// object is simply not found.
#pragma once

#include <algorithm>
#include <string>
#include <string_view>
#include <vector>

namespace hutch::core {

struct Principal {
  std::string user_id;  // "usr_…": whose objects this request sees and makes
  std::string user_name;
  std::string role;      // admin | user | instructor | participant
  std::string token_id;  // the token used; never the token itself
  std::vector<std::string> scopes;
  // Role admin and a token with the admin scope: sees and acts on every user's objects.
  bool admin = false;
  // Set when an admin acts on behalf of user_id (?owner= / X-Hutch-Owner): the admin's user id.
  // Such a request sees exactly what user_id would see, and is audited as the admin's.
  std::string acting_admin;
  // Set when the change is made for a workshop (docs/workshops.md): by its controller, or by its
  // instructor acting for a participant. The transitions it causes have reason `workshop`.
  std::string workshop_id;

  bool HasScope(std::string_view scope) const {
    return std::find(scopes.begin(), scopes.end(), scope) != scopes.end();
  }
  // The owner filter for lookups: empty (everyone's) for admins, else the caller's own.
  std::string OwnerFilter() const { return admin ? std::string() : user_id; }
  // Who is recorded as having made a change.
  const std::string& Actor() const { return acting_admin.empty() ? user_id : acting_admin; }
};

}  // namespace hutch::core
