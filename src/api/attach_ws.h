// The WebSockets of attached shells (docs/attach.md): the terminal — the exec WebSocket's
// conversation (exec_ws.h) with the shell's command, recording and mode, whose close ends the
// shell — and the read-only live view another authorised user joins, which follows the
// recording as it is written. Beast-free: handler files include this.
#pragma once

#include <functional>
#include <memory>
#include <string>

#include "api/http_types.h"
#include "controller/attach_service.h"
#include "controller/session_service.h"

namespace hutch::api {

std::shared_ptr<WebSocketSession> NewAttachTerminal(controller::AttachService& attach,
                                                    controller::SessionService& service,
                                                    controller::AttachService::Terminal terminal);

// Channel 1 frames with the shell's output from its start (replayed from the recording, then
// live), and a channel 3 status frame {"ended": true, "reason": …} once the shell has ended;
// what the observer sends is ignored.
std::shared_ptr<WebSocketSession> NewAttachObserver(controller::AttachService& attach,
                                                    std::string attach_id,
                                                    std::string recording_path);

}  // namespace hutch::api
