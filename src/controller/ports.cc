// Port settings (docs/api.md, "Ports"): whether a session's port answers to anyone who reaches
// the server. The proxy asks PortIsPublic for requests that bring no token, signed URL or
// access cookie.
#include <fmt/format.h>

#include "common/log.h"
#include "common/time.h"
#include "controller/session_service.h"

namespace hutch::controller {

Result<std::vector<store::PortSetting>> SessionService::ListPorts(const core::Principal& who,
                                                                  std::string_view id_or_name,
                                                                  core::Session* touched) {
  ASSIGN_OR_RETURN(core::Session s, store_.GetSession(who.OwnerFilter(), id_or_name));
  if (touched) *touched = s;
  return store_.ListPortSettings(s.id);
}

Result<store::PortSetting> SessionService::SetPortPublic(const core::Principal& who,
                                                         std::string_view id_or_name, uint16_t port,
                                                         bool is_public, core::Session* touched) {
  ASSIGN_OR_RETURN(core::Session s, store_.GetSession(who.OwnerFilter(), id_or_name));
  if (touched) *touched = s;
  store::PortSetting setting;
  setting.session_id = s.id;
  setting.port = port;
  setting.is_public = is_public;
  setting.updated_at = Now();
  RETURN_IF_ERROR(store_.PutPortSetting(setting));
  LOG_SESSION_INFO(s.id, "port {} is {} now (by {})", port, is_public ? "public" : "private",
                   who.Actor());
  return setting;
}

bool SessionService::PortIsPublic(std::string_view session_id, uint16_t port) {
  Result<std::vector<store::PortSetting>> settings = store_.ListPortSettings(session_id);
  if (!settings.ok()) {
    LOG_SESSION_WARN(std::string(session_id), "read the settings of port {}: {}", port,
                     settings.status().ToString());
    return false;
  }
  for (const store::PortSetting& p : *settings)
    if (p.port == port) return p.is_public;
  return false;
}

}  // namespace hutch::controller
