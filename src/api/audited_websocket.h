// A WebSocket conversation in the audit trail from open to close. Terminals, exec streams and
// TCP relays are GETs, so the request alone would record only that one was asked for: the
// gate hands the request's record to this wrapper instead of writing it, and the wrapper
// writes it when the upgrade is answered (with that status: 101, or the refusal's, such as 503
// for a port nothing listens on), then, for an accepted one, a record of the close with the
// same user, object and path, action "<action>.closed".
#pragma once

#include <memory>

#include "api/audit_log.h"
#include "api/websocket_session.h"
#include "store/store.h"

namespace hutch::api {

// `opened` is the record of the upgrade request.
std::shared_ptr<WebSocketSession> AuditWebSocket(std::shared_ptr<WebSocketSession> inner,
                                                 AuditLog& audit, store::AuditRecord opened);

}  // namespace hutch::api
