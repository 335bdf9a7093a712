// An agent transport: how the server reaches one sandbox's agent (docs/architecture.md, "The
// transport contract"). A driver hands one out from Driver::ConnectAgent; it is the only
// data-plane thing a driver hands out. It carries bytes and nothing else: the agent protocol
// (protocol.h, stream_protocol.h), its Hello included, is spoken by whoever connects.
//
// Two forms of connecting, for the two kinds of callers: blocking (the blocking pool) and Asio
// (the network threads). Both give a connected stream socket on which frames flow as they are;
// a transport that encrypts hands out a socket whose bytes the kernel (kTLS) or the transport
// protects, so callers never change. A Transport is immutable once made: share it, use it from
// any thread, and keep it after the call that made it; every Connect is a new connection.
#pragma once

#include <cstdint>
#include <memory>
#include <string>

#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/awaitable.hpp>
#include <boost/asio/generic/stream_protocol.hpp>

#include "common/status.h"
#include "common/unique_fd.h"

namespace hutch::agent {

class Transport {
 public:
  using Socket = boost::asio::generic::stream_protocol::socket;

  Transport(std::string session_id, std::string secret)
      : session_id_(std::move(session_id)), secret_(std::move(secret)) {}
  virtual ~Transport() = default;

  // A new connection, waiting up to timeout_ms for it. unavailable naming the session when the
  // agent does not accept ("agent of ses_x does not answer: connect: ECONNREFUSED").
  virtual Result<UniqueFd> Connect(int64_t timeout_ms) const = 0;
  // The same on `executor`, without blocking it.
  virtual boost::asio::awaitable<Result<Socket>> AsyncConnect(
      boost::asio::any_io_executor executor) const = 0;
  // Where it connects, for logs ("unix:/var/lib/hutch/sessions/ses_x/agent.sock").
  virtual std::string Describe() const = 0;
  // Whether its connections carry fds (SCM_RIGHTS: a unix socket end to end). When they do,
  // a download gets the fd of the file the agent opened instead of its bytes in frames
  // (files_protocol.h); when not, the same request streams.
  virtual bool CarriesFds() const { return false; }

  // The session whose agent this reaches; error messages name it.
  const std::string& session_id() const { return session_id_; }
  // The sandbox's secret, which whoever connects presents in its Hello (protocol.h); empty for
  // a sandbox made before secrets existed. Never logged, never shown.
  const std::string& secret() const { return secret_; }

 private:
  std::string session_id_;
  std::string secret_;
};

// An agent listening on a unix socket at `path` (the local driver's).
std::shared_ptr<const Transport> NewUnixTransport(std::string path, std::string session_id,
                                                  std::string secret);

}  // namespace hutch::agent
