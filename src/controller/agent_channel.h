// One streaming operation on a session's agent, asynchronous, for the relays on the network
// threads (the exec WebSocket, the port WebSocket relay, the HTTP port proxy): the one place
// that speaks the agent's stream protocol for them — connect through the driver's transport,
// Hello, the opening request and its Started, credit both ways, activity, busy, and reporting an
// agent that does not answer. The relays move bytes; they never see a frame.
//
// Every call runs on the strand given at construction (the relay's), so nothing here locks. One
// coroutine may wait in Next() while another writes: that is how a relay runs its two
// directions.
#pragma once

#include <array>
#include <chrono>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>

#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/awaitable.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/strand.hpp>

#include "agent/protocol.h"
#include "agent/stream_protocol.h"
#include "agent/transport.h"
#include "common/status.h"
#include "controller/session_service.h"
#include "core/process.h"

namespace hutch::controller {

// Tells the session service a relayed session is in use, at most once a second.
class ActivityNote {
 public:
  ActivityNote(SessionService& service, std::string session_id)
      : service_(service), session_id_(std::move(session_id)) {}
  void Note();

 private:
  SessionService& service_;
  std::string session_id_;
  // None before the first note: a default time_point is the machine's boot, not "long ago".
  std::optional<std::chrono::steady_clock::time_point> last_;
};

class AgentChannel {
 public:
  using Strand = boost::asio::strand<boost::asio::any_io_executor>;

  AgentChannel(const Strand& strand, SessionService& service, core::Session session,
               std::shared_ptr<const agent::Transport> transport);

  // Starts a command whose output streams (the session is busy while the channel lives).
  // The agent's error (a bad cwd, a full pids limit) is the answer.
  boost::asio::awaitable<Status> OpenExec(const core::StreamExecRequest& request);
  // Connects to 127.0.0.1:port inside the session. unavailable "nothing answers on port …"
  // when nothing listens there. `peer` names the relay in the agent's log.
  boost::asio::awaitable<Status> OpenTcp(uint16_t port, std::string_view peer);

  struct Event {
    enum class Kind {
      kStdout,  // data: output (the relayed connection's bytes for a TCP channel)
      kStderr,  // data
      kExit,    // exit: the command ended (a TCP channel: the program closed the connection)
      kError,   // data: the agent's message; the operation is over
      kGone,    // the agent went away or broke the framing
    } kind = Kind::kGone;
    std::string data;
    core::ExitInfo exit;
  };
  // The next event. Output handed out by the call before counts as delivered when this one is
  // made: the agent gets its credit back then, so a relay that stops calling (its client reads
  // slowly) holds the command at most one window ahead.
  boost::asio::awaitable<Event> Next();

  // Sends bytes toward the command's stdin or the relayed connection, waiting for the agent's
  // credit (not reading meanwhile pushes back on whoever sends them); false once the channel
  // is closed.
  boost::asio::awaitable<bool> Write(std::string_view data);
  // End of input (the command's stdin, the relayed connection's write side).
  boost::asio::awaitable<void> CloseInput();
  boost::asio::awaitable<void> Resize(uint16_t rows, uint16_t cols);
  boost::asio::awaitable<void> Signal(int sig);
  // Closes the connection: a command still running is killed, a relayed connection closed; a
  // Write waiting for credit and a Next waiting for the agent return.
  void Close();

  // After kGone: why, when the sandbox died ("sandbox_died: agent exited (signal 9)"; its
  // session is then on its way to error), else nullopt. Does not block.
  std::optional<std::string> WhyGone();

  // Bytes that moved toward the session: activity.
  void NoteActivity() { activity_.Note(); }
  const core::Session& session() const { return session_; }

 private:
  static constexpr uint32_t kStream = 1;

  boost::asio::awaitable<Status> Open(std::string request, agent::MessageType type,
                                      std::string_view peer, std::string_view what);
  boost::asio::awaitable<bool> ReadFrame(agent::Frame* frame);
  // Queues encoded frames; whoever finds no write under way writes the queue until it is
  // empty (frames come from both directions of a relay).
  boost::asio::awaitable<void> Send(std::string frames);

  SessionService& service_;
  core::Session session_;
  std::shared_ptr<const agent::Transport> transport_;
  agent::Transport::Socket socket_;
  agent::FrameParser parser_;
  std::array<char, 65536> read_buf_;
  std::string queue_;
  bool writing_ = false;
  bool closed_ = false;
  boost::asio::steady_timer credit_signal_;
  uint16_t port_ = 0;  // of a TCP channel
  uint32_t window_ = agent::kDefaultWindow;
  uint32_t to_grant_ = 0;
  uint32_t delivered_ = 0;  // output handed out by the last Next, granted at the next
  int64_t out_credit_ = agent::kStdinWindow;
  ActivityNote activity_;
  std::shared_ptr<void> busy_;
};

}  // namespace hutch::controller
