#include "agent/message_client.h"

#include <poll.h>

#include <fmt/format.h>

#include "agent/bridge_protocol.h"
#include "agent/frame_io.h"

namespace hutch::agent {

namespace {
constexpr uint32_t kStream = 1;
constexpr int64_t kAttachTimeoutMs = 5000;
}  // namespace

Result<MessageBridgeClient> MessageBridgeClient::Open(const Transport& transport) {
  ASSIGN_OR_RETURN(AgentClient client, AgentClient::Connect(transport));
  std::string error;
  if (WriteFrame(client.fd_.get(), MessageType::kMessageAttach, kStream, "",
                 MonotonicMs() + kAttachTimeoutMs, &error) != IoStatus::kOk)
    return client.Failure("does not take the message relay", error);
  Frame frame;
  if (ReadFrame(client.fd_.get(), &client.parser_, &frame, MonotonicMs() + kAttachTimeoutMs,
                &error) != IoStatus::kOk)
    return client.Failure("does not answer the message relay", error);
  if (frame.type == MessageType::kError) {
    ErrorMessage em;
    if (!DecodeError(frame.payload, &em, &error)) return client.Failure("answered", error);
    return StatusFromAgentError(em, transport.session_id());
  }
  if (frame.type != MessageType::kMessageAttach)
    return client.Failure("answered the message relay with", MessageTypeName(frame.type));
  return MessageBridgeClient(std::move(client));
}

Result<std::optional<MessageBridgeClient::Event>> MessageBridgeClient::Next(int64_t timeout_ms,
                                                                            int wake_fd) {
  if (client_.parser_.buffered() == 0) {
    pollfd p[2] = {{client_.fd(), POLLIN, 0}, {wake_fd, POLLIN, 0}};
    int n = poll(p, wake_fd >= 0 ? 2 : 1, static_cast<int>(timeout_ms));
    if (n == 0) return std::optional<Event>();
    if (n < 0 && errno == EINTR) return std::optional<Event>();
    if (p[0].revents == 0) return std::optional<Event>();  // woken
  }
  Frame frame;
  std::string error;
  IoStatus st =
      ReadFrame(client_.fd(), &client_.parser_, &frame, MonotonicMs() + kAttachTimeoutMs, &error);
  if (st != IoStatus::kOk)
    return client_.Failure("ended the message relay", error.empty() ? "closed" : error);
  LocalLine line;
  if ((frame.type != MessageType::kLocalLine && frame.type != MessageType::kLocalClosed) ||
      !DecodeLocalLine(frame.payload, &line))
    return client_.Failure("sent on the message relay", MessageTypeName(frame.type));
  Event e;
  e.kind = frame.type == MessageType::kLocalLine ? Event::Kind::kLine : Event::Kind::kClosed;
  e.conn = line.conn;
  e.line = std::move(line.line);
  return std::optional<Event>(std::move(e));
}

Status MessageBridgeClient::SendLine(uint32_t conn, std::string_view line) {
  std::string error;
  if (WriteFrame(client_.fd(), MessageType::kLocalLine, kStream, EncodeLocalLine(conn, line),
                 MonotonicMs() + kAttachTimeoutMs, &error) != IoStatus::kOk)
    return client_.Failure("does not take a message", error);
  return Status::Ok();
}

Status MessageBridgeClient::CloseLocal(uint32_t conn) {
  std::string error;
  if (WriteFrame(client_.fd(), MessageType::kLocalClosed, kStream, EncodeLocalLine(conn, ""),
                 MonotonicMs() + kAttachTimeoutMs, &error) != IoStatus::kOk)
    return client_.Failure("does not take a close", error);
  return Status::Ok();
}

}  // namespace hutch::agent
