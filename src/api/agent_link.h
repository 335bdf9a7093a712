// The async side of one connection from a network thread to a session's agent, shared by the
// relays that speak the agent's stream protocol over it (exec_ws.cc, port_ws.cc,
// port_proxy.cc): the socket, the frames read from it, and the queue of frames to it.
// Every call runs on the owner's strand, so the queue needs no lock.
#pragma once

#include <array>
#include <chrono>
#include <optional>
#include <string>

#include <boost/asio.hpp>

#include "agent/protocol.h"
#include "agent/transport.h"
#include "common/status.h"
#include "controller/session_service.h"

namespace hutch::api {

class AgentLink {
 public:
  explicit AgentLink(const boost::asio::strand<boost::asio::any_io_executor>& strand)
      : socket_(strand) {}

  // Connects through the transport the session's driver handed out; unavailable (naming the
  // session) when the agent does not accept.
  boost::asio::awaitable<Status> Connect(const agent::Transport& transport);
  // The next frame; false when the agent went away or broke the framing.
  boost::asio::awaitable<bool> ReadFrame(agent::Frame* frame);
  // Queues encoded frames; whoever finds no write under way writes the queue until it is empty
  // (frames come from both directions' loops of a relay).
  boost::asio::awaitable<void> Send(std::string frames);
  void Close();

 private:
  agent::Transport::Socket socket_;
  agent::FrameParser parser_;
  std::array<char, 65536> read_buf_;
  std::string queue_;
  bool writing_ = false;
};

// Tells the session service a relayed session is in use, at most once a second.
class ActivityNote {
 public:
  ActivityNote(controller::SessionService& service, std::string session_id)
      : service_(service), session_id_(std::move(session_id)) {}
  void Note();

 private:
  controller::SessionService& service_;
  std::string session_id_;
  // None before the first note: a default time_point is the machine's boot, not "long ago".
  std::optional<std::chrono::steady_clock::time_point> last_;
};

}  // namespace hutch::api
