// Streamed responses (SSE, follow): chunks arrive as produced, and stopping the server wakes a
// stream that is waiting for data instead of hanging.
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <condition_variable>
#include <deque>
#include <mutex>
#include <thread>

#include "api/server.h"
#include "common/unique_fd.h"
#include "store/sqlite/sqlite_store.h"
#include "store/store.h"

namespace hutch::api {
namespace {

// Yields the queued chunks, then waits until Cancel().
class QueueStream : public BodyStream {
 public:
  explicit QueueStream(std::deque<std::string> chunks, bool end_after)
      : chunks_(std::move(chunks)), end_after_(end_after) {}
  std::optional<std::string> Next() override {
    std::unique_lock lock(mu_);
    if (!chunks_.empty()) {
      std::string c = std::move(chunks_.front());
      chunks_.pop_front();
      return c;
    }
    if (end_after_) return std::nullopt;
    cv_.wait(lock, [&] { return cancelled_; });
    return std::nullopt;
  }
  void Cancel() override {
    std::lock_guard lock(mu_);
    cancelled_ = true;
    cv_.notify_all();
  }
  bool cancelled() {
    std::lock_guard lock(mu_);
    return cancelled_;
  }

 private:
  std::mutex mu_;
  std::condition_variable cv_;
  std::deque<std::string> chunks_;
  bool end_after_;
  bool cancelled_ = false;
};

class ServerStreamTest : public ::testing::Test {
 protected:
  void SetUp() override {
    char tmpl[] = "/tmp/hutch-stream-XXXXXX";
    ASSERT_TRUE(mkdtemp(tmpl));
    dir_ = tmpl;
    auto store = store::OpenSqliteStore(dir_ + "/hutch.db");
    ASSERT_TRUE(store.ok());
    store_ = std::move(*store);
    auth_ = std::make_unique<Authenticator>(*store_);
    audit_ = std::make_unique<AuditLog>(*store_, std::chrono::hours(0));
    limiter_ = std::make_unique<RateLimiter>(0, 1);
    gate_ = std::make_unique<Gate>(router_, *auth_, *audit_, *limiter_, *store_);
  }
  void TearDown() override {
    server_.reset();
    gate_.reset();
    audit_.reset();
    auth_.reset();
    store_.reset();
    for (const char* f : {"/hutch.db", "/hutch.db-wal", "/hutch.db-shm"})
      unlink((dir_ + f).c_str());
    rmdir(dir_.c_str());
  }
  uint16_t Start() {
    ServerOptions opts;
    opts.listen = "127.0.0.1:0";
    opts.blocking_threads = 4;
    server_ = std::make_unique<Server>(opts, *gate_);
    auto bound = server_->Start();
    EXPECT_TRUE(bound.ok()) << bound.status().ToString();
    return static_cast<uint16_t>(std::stoi(bound->substr(bound->rfind(':') + 1)));
  }
  static UniqueFd Connect(uint16_t port) {
    UniqueFd fd(socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
    sockaddr_in sa{};
    sa.sin_family = AF_INET;
    sa.sin_port = htons(port);
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    EXPECT_EQ(connect(fd.get(), reinterpret_cast<sockaddr*>(&sa), sizeof sa), 0);
    return fd;
  }
  static std::string ReadUntil(int fd, std::string_view marker) {
    std::string out;
    char buf[4096];
    while (out.find(marker) == std::string::npos) {
      ssize_t n = read(fd, buf, sizeof buf);
      if (n <= 0) break;
      out.append(buf, static_cast<size_t>(n));
    }
    return out;
  }

  std::string dir_;
  std::unique_ptr<store::Store> store_;
  std::unique_ptr<Authenticator> auth_;
  std::unique_ptr<AuditLog> audit_;
  std::unique_ptr<RateLimiter> limiter_;
  Router router_;
  std::unique_ptr<Gate> gate_;
  std::unique_ptr<Server> server_;
};

TEST_F(ServerStreamTest, ChunksArriveAsProducedThenTheStreamEnds) {
  router_.Add("GET", "/stream", RouteSpec::Public(), [](const RouteContext&) {
    ApiResponse r;
    r.content_type = "text/event-stream";
    r.stream = std::make_shared<QueueStream>(
        std::deque<std::string>{"data: one\n\n", "", "data: two\n\n"}, /*end_after=*/true);
    return r;
  });
  uint16_t port = Start();
  UniqueFd fd = Connect(port);
  std::string req = "GET /stream HTTP/1.1\r\nHost: x\r\n\r\n";
  ASSERT_EQ(write(fd.get(), req.data(), req.size()), static_cast<ssize_t>(req.size()));
  std::string got = ReadUntil(fd.get(), "0\r\n\r\n");
  EXPECT_NE(got.find("HTTP/1.1 200"), std::string::npos) << got;
  EXPECT_NE(got.find("text/event-stream"), std::string::npos) << got;
  EXPECT_NE(got.find("Transfer-Encoding: chunked"), std::string::npos) << got;
  size_t one = got.find("data: one"), two = got.find("data: two");
  ASSERT_NE(one, std::string::npos) << got;
  ASSERT_NE(two, std::string::npos) << got;
  EXPECT_LT(one, two);
  EXPECT_NE(got.find("0\r\n\r\n", two), std::string::npos) << "no last chunk: " << got;
}

TEST_F(ServerStreamTest, StopCancelsAStreamWaitingForData) {
  auto stream = std::make_shared<QueueStream>(std::deque<std::string>{"data: hi\n\n"}, false);
  router_.Add("GET", "/wait", RouteSpec::Public(), [stream](const RouteContext&) {
    ApiResponse r;
    r.content_type = "text/event-stream";
    r.stream = stream;
    return r;
  });
  uint16_t port = Start();
  UniqueFd fd = Connect(port);
  std::string req = "GET /wait HTTP/1.1\r\nHost: x\r\n\r\n";
  ASSERT_EQ(write(fd.get(), req.data(), req.size()), static_cast<ssize_t>(req.size()));
  ReadUntil(fd.get(), "data: hi");
  std::thread stopper([&] { server_->Stop(); });
  stopper.join();  // would hang here if the blocked Next() were not woken
  EXPECT_TRUE(stream->cancelled());
}

}  // namespace
}  // namespace hutch::api
