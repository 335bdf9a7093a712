#include "api/audited_websocket.h"

#include "common/time.h"

namespace hutch::api {

namespace {

class AuditedWebSocket final : public WebSocketSession {
 public:
  AuditedWebSocket(std::shared_ptr<WebSocketSession> inner, AuditLog& audit,
                   store::AuditRecord opened)
      : inner_(std::move(inner)), audit_(audit), record_(std::move(opened)) {
    inner_->OnAnswered([this](int status) { RecordOpen(status); });
  }

  boost::asio::awaitable<void> Run(boost::beast::tcp_stream& stream,
                                   WebSocketUpgrade request) override {
    RecordOnExit guard(*this);
    co_await inner_->Run(stream, std::move(request));
  }
  boost::asio::awaitable<void> Run(boost::beast::ssl_stream<boost::beast::tcp_stream>& stream,
                                   WebSocketUpgrade request) override {
    RecordOnExit guard(*this);
    co_await inner_->Run(stream, std::move(request));
  }

 private:
  // Also when the coroutine is destroyed without finishing (the server stops).
  struct RecordOnExit {
    explicit RecordOnExit(AuditedWebSocket& s) : s(s) {}
    ~RecordOnExit() { s.RecordClose(); }
    AuditedWebSocket& s;
  };

  void RecordOpen(int status) {
    if (open_recorded_) return;
    open_recorded_ = true;
    store::AuditRecord r = record_;
    r.at = Now();
    r.status = status;
    accepted_ = status == 101;
    audit_.Record(std::move(r));
  }

  void RecordClose() {
    // A client that went away before the answer: the request is still in the trail.
    if (!open_recorded_) RecordOpen(499);
    if (!accepted_) return;
    store::AuditRecord r = record_;
    r.at = Now();
    r.action += ".closed";
    audit_.Record(std::move(r));
  }

  std::shared_ptr<WebSocketSession> inner_;
  AuditLog& audit_;
  store::AuditRecord record_;
  bool open_recorded_ = false;
  bool accepted_ = false;
};

}  // namespace

std::shared_ptr<WebSocketSession> AuditWebSocket(std::shared_ptr<WebSocketSession> inner,
                                                 AuditLog& audit, store::AuditRecord opened) {
  return std::make_shared<AuditedWebSocket>(std::move(inner), audit, std::move(opened));
}

}  // namespace hutch::api
