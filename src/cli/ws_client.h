// A client for GET /v1/sessions/{id}/exec/ws (DESIGN.md §4's channel framing): used by
// `hutch shell`, `hutch exec -it`, the integration tests and the benchmarks. One thread runs
// the connection's I/O; Send and Read may be called from any threads (one reader at a time).
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>

#include "cli/http_client.h"
#include "common/json.h"
#include "common/status.h"

namespace hutch::client {

enum ExecChannel : uint8_t {
  kChannelStdin = 0,
  kChannelStdout = 1,
  kChannelStderr = 2,
  kChannelStatus = 3,
  kChannelResize = 4,
  kChannelSignal = 5,
};

class ExecSocket {
 public:
  struct Frame {
    int channel = 0;
    std::string data;
  };

  // Connects to `base_url` (http:// or https://), upgrades /v1/sessions/{session}/exec/ws with
  // the bearer token and sends `spec` (an exec request, with `tty` for a terminal) as the first
  // frame. An HTTP error answer (404, 409…) is its Status.
  static Result<std::unique_ptr<ExecSocket>> Open(const std::string& base_url,
                                                  const std::string& token,
                                                  std::string_view session,
                                                  const json::object& spec,
                                                  const TlsOptions& tls = {});
  // GET /v1/sessions/{session}/ports/{port}/tcp: a TCP connection to the port inside the
  // session. In this mode a Send carries bytes (its channel is ignored; empty data half-closes)
  // and every Frame read has channel kChannelStdout with the bytes the connection sent; the read
  // answers nullopt once the program closed the connection. When nothing listens on the port
  // the server answers 503 (unavailable) instead of upgrading.
  static Result<std::unique_ptr<ExecSocket>> OpenPortTcp(const std::string& base_url,
                                                         const std::string& token,
                                                         std::string_view session, int port,
                                                         const TlsOptions& tls = {});
  // GET /v1/sessions/{session}/terminals/{terminal}/ws: attaches to a detachable terminal (no
  // spec: the scrollback comes first, then the live output; closing detaches). With `observe`
  // the server drops what this client sends.
  static Result<std::unique_ptr<ExecSocket>> OpenTerminal(const std::string& base_url,
                                                          const std::string& token,
                                                          std::string_view session,
                                                          std::string_view terminal, bool observe,
                                                          const TlsOptions& tls = {});
  virtual ~ExecSocket() = default;

  // Sends one binary frame: the channel byte, then `data`.
  virtual Status Send(uint8_t channel, std::string_view data) = 0;
  // The next frame from the server; nullopt once the connection closed. Waits at most
  // `timeout_ms` (< 0: without limit); unavailable when it passed.
  virtual Result<std::optional<Frame>> Read(int64_t timeout_ms = -1) = 0;
  // Closes the connection (the server kills a command still running).
  virtual void Close() = 0;

  // Helpers over Send.
  Status SendStdin(std::string_view data) { return Send(kChannelStdin, data); }
  Status CloseStdin() { return Send(kChannelStdin, {}); }
  Status Resize(int rows, int cols);
  Status Signal(std::string_view name);
};

}  // namespace hutch::client
