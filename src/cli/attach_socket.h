// The WebSockets of attached shells (docs/attach.md) for clients: their terminal and the live,
// read-only view. The same ExecSocket as exec and the TCP relay (ws_client.h).
#pragma once

#include <memory>
#include <string>
#include <string_view>

#include "cli/ws_client.h"

namespace hutch::client {

// GET /v1/attach/{id}/ws: the terminal of an attached shell; `spec` gives its tty {rows, cols}
// and env. The same channels as ExecSocket::Open.
Result<std::unique_ptr<ExecSocket>> OpenAttachSocket(const std::string& base_url,
                                                     const std::string& token,
                                                     std::string_view attach_id,
                                                     const json::object& spec,
                                                     const TlsOptions& tls = {});
// GET /v1/attach/{id}/observe: the shell's output (channel 1) from its start, read-only, and a
// status frame (channel 3) once it ended.
Result<std::unique_ptr<ExecSocket>> OpenObserveSocket(const std::string& base_url,
                                                      const std::string& token,
                                                      std::string_view attach_id,
                                                      const TlsOptions& tls = {});

}  // namespace hutch::client
