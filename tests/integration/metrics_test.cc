// GET /metrics and /readyz on a real server: the output passes Prometheus's own `promtool check
// metrics`, and each metric of docs/metrics.md moves as a workload of real sessions says.
#include <dirent.h>
#include <signal.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <atomic>
#include <cstdio>
#include <fstream>
#include <map>
#include <regex>
#include <sstream>
#include <thread>

#include <fmt/format.h>

#include "cli/http_client.h"
#include "cli/loopback_server.h"
#include "cli/ws_client.h"
#include "common/json.h"
#include "testing/server_process.h"
#include "testing/test_util.h"

namespace hutch {
namespace {

using client::HttpClient;
using std::chrono::milliseconds;
using std::chrono::seconds;

// name{labels} → value, from the text format; comments and blank lines skipped.
std::map<std::string, double> ParseMetrics(const std::string& text) {
  std::map<std::string, double> out;
  std::istringstream in(text);
  std::string line;
  while (std::getline(in, line)) {
    if (line.empty() || line[0] == '#') continue;
    size_t sp = line.rfind(' ');
    out[line.substr(0, sp)] = std::stod(line.substr(sp + 1));
  }
  return out;
}

// The sum of every series of `name` whose labels contain each of `with` (`k="v"` strings).
double Sum(const std::map<std::string, double>& m, const std::string& name,
           const std::vector<std::string>& with = {}) {
  double total = 0;
  for (const auto& [series, value] : m) {
    if (series != name && series.rfind(name + "{", 0) != 0) continue;
    bool all = true;
    for (const auto& w : with) all = all && series.find(w) != std::string::npos;
    if (all) total += value;
  }
  return total;
}

// `promtool check metrics` on the text; its complaints, or "" when it accepts it.
std::string Promtool(const std::string& text) {
  hutch::testing::TempDir dir("hutch-metrics");
  std::string in = dir.path() + "/metrics.txt", out = dir.path() + "/promtool.txt";
  std::ofstream(in) << text;
  int rc = std::system(fmt::format("promtool check metrics < {} > {} 2>&1", in, out).c_str());
  std::ifstream f(out);
  std::string said((std::istreambuf_iterator<char>(f)), std::istreambuf_iterator<char>());
  return rc == 0 ? "" : fmt::format("exit {}: {}", rc, said);
}

// The pid of the hutch-agent whose output goes to a file under the session's directory.
pid_t AgentOf(const std::string& data_dir, const std::string& session_id) {
  DIR* d = opendir("/proc");
  pid_t found = -1;
  while (dirent* e = d ? readdir(d) : nullptr) {
    pid_t pid = atoi(e->d_name);
    if (pid <= 0) continue;
    std::ifstream comm(fmt::format("/proc/{}/comm", pid));
    std::string name;
    std::getline(comm, name);
    if (name.rfind("hutch-agent", 0) != 0 && name.rfind("memfd:hutch-age", 0) != 0) continue;
    char buf[4096];
    ssize_t n = readlink(fmt::format("/proc/{}/fd/1", pid).c_str(), buf, sizeof buf - 1);
    if (n <= 0) continue;
    std::string log(buf, static_cast<size_t>(n));
    if (log.find(data_dir) != std::string::npos && log.find(session_id) != std::string::npos) {
      found = pid;
      break;
    }
  }
  if (d) closedir(d);
  return found;
}

class MetricsTest : public ::testing::Test {
 protected:
  void SetUp() override {
    if (geteuid() != 0) GTEST_SKIP() << "needs root (sandboxes)";
    config_ = std::make_unique<hutch::testing::TempDir>("hutch-metrics-config");
    std::ofstream(config_->path() + "/config.yaml")
        << "metrics_listen: 127.0.0.1:0\nwebhooks: {allow_private: true}\n";
    auto server = hutch::testing::ServerProcess::Start(
        HUTCH_BINARY, "", {"--config", config_->path() + "/config.yaml"});
    ASSERT_TRUE(server.ok()) << server.status().ToString();
    server_ = std::move(*server);
    auto http = HttpClient::Create(server_->url(), server_->token());
    ASSERT_TRUE(http.ok());
    http_ = std::make_unique<HttpClient>(std::move(*http));
  }

  client::HttpResponse Call(std::string_view method, std::string_view target,
                            std::string_view body = {}) {
    auto r = http_->Request(method, target, body);
    EXPECT_TRUE(r.ok()) << r.status().ToString();
    return r.ok() ? *r : client::HttpResponse{};
  }

  std::string Scrape() {
    client::HttpResponse r = Call("GET", "/metrics");
    EXPECT_EQ(r.status, 200) << r.body;
    EXPECT_NE(r.headers["content-type"].find("text/plain; version=0.0.4"), std::string::npos);
    return r.body;
  }

  std::unique_ptr<hutch::testing::TempDir> config_;
  std::unique_ptr<hutch::testing::ServerProcess> server_;
  std::unique_ptr<HttpClient> http_;
};

TEST_F(MetricsTest, AWorkloadMovesEachMetricAndPromtoolAcceptsTheOutput) {
  cli::testing::LoopbackServer receiver(
      [](const cli::testing::ServedRequest&) { return cli::testing::CannedResponse{}; });
  ASSERT_EQ(Call("POST", "/v1/webhooks",
                 fmt::format(R"({{"url":"{}/hook","secret":"0123456789abcdef"}})", receiver.url()))
                .status,
            201);
  auto before = ParseMetrics(Scrape());

  client::HttpResponse created = Call("POST", "/v1/sessions", R"({"name":"m1"})");
  ASSERT_EQ(created.status, 201) << created.body;
  std::string id(json::parse(created.body).at("id").as_string());
  for (int i = 0; i < 2; ++i)
    ASSERT_EQ(Call("POST", "/v1/sessions/m1/exec", R"({"cmd":["true"]})").status, 200);
  EXPECT_EQ(Call("GET", "/v1/no-such-route").status, 404);

  // An events stream held open while scraping.
  std::atomic<bool> stop{false};
  std::thread sse([&] {
    auto c = HttpClient::Create(server_->url(), server_->token());
    if (c.ok())
      (void)c->Stream("GET", "/v1/events", {{"Accept", "text/event-stream"}},
                      [&](std::string_view) { return !stop.load(); });
  });
  std::string during_text;
  for (int i = 0; i < 100; ++i) {
    during_text = Scrape();
    if (Sum(ParseMetrics(during_text), "hutch_open_streams", {R"(kind="events")"}) >= 1) break;
    std::this_thread::sleep_for(milliseconds(50));
  }
  // A terminal held open too.
  json::object tty_spec = json::parse(R"({"cmd":["sh"],"tty":{"rows":24,"cols":80}})").as_object();
  auto terminal = client::ExecSocket::Open(server_->url(), server_->token(), "m1", tty_spec);
  ASSERT_TRUE(terminal.ok()) << terminal.status().ToString();
  for (int i = 0; i < 100; ++i) {
    during_text = Scrape();
    if (Sum(ParseMetrics(during_text), "hutch_open_streams", {R"(kind="terminal")"}) >= 1) break;
    std::this_thread::sleep_for(milliseconds(50));
  }
  auto during = ParseMetrics(during_text);
  EXPECT_EQ(Sum(during, "hutch_open_streams", {R"(kind="events")"}), 1);
  EXPECT_EQ(Sum(during, "hutch_open_streams", {R"(kind="terminal")"}), 1);
  (*terminal)->Close();
  EXPECT_EQ(Sum(during, "hutch_sessions", {R"(state="running")"}), 1);

  // The sandbox dies behind the server's back: the server notices by itself (docs/server.md
  // "Faults") and the session goes to error; an exec after that is refused without reaching an
  // agent, so it is no exec in the histogram.
  pid_t agent = AgentOf(server_->data_dir(), id);
  ASSERT_GT(agent, 0) << "no agent process for " << id;
  ASSERT_EQ(kill(agent, SIGKILL), 0);
  std::string state;
  for (int i = 0; i < 250 && state != "error"; ++i) {
    auto got = Call("GET", "/v1/sessions/m1");
    if (got.status == 200) state = std::string(json::parse(got.body).at("state").as_string());
    if (state != "error") std::this_thread::sleep_for(milliseconds(20));
  }
  ASSERT_EQ(state, "error") << "the dead sandbox was not noticed in 5 s";
  EXPECT_EQ(Call("POST", "/v1/sessions/m1/exec", R"({"cmd":["true"]})").status, 409);
  EXPECT_EQ(Call("DELETE", "/v1/sessions/m1").status, 200);

  // Webhook deliveries are asynchronous: wait for the receiver to have some.
  for (int i = 0; i < 200 && receiver.requests().empty(); ++i)
    std::this_thread::sleep_for(milliseconds(25));
  std::string after_text;
  std::map<std::string, double> after;
  for (int i = 0; i < 100; ++i) {
    after_text = Scrape();
    after = ParseMetrics(after_text);
    if (Sum(after, "hutch_webhook_deliveries_total", {R"(result="ok")"}) >= 1) break;
    std::this_thread::sleep_for(milliseconds(50));
  }
  stop = true;
  sse.join();

  EXPECT_EQ(Promtool(after_text), "");
  auto moved = [&](const std::string& name, const std::vector<std::string>& with = {}) {
    return Sum(after, name, with) - Sum(before, name, with);
  };
  EXPECT_EQ(moved("hutch_session_creates_total", {R"(result="ok")"}), 1);
  EXPECT_EQ(moved("hutch_session_create_seconds_count"), 1);
  EXPECT_EQ(moved("hutch_session_transitions_total", {R"(to="running")"}), 1);
  EXPECT_EQ(moved("hutch_session_transitions_total", {R"(to="error")"}), 1);
  EXPECT_EQ(moved("hutch_session_transitions_total", {R"(to="terminated")"}), 1);
  EXPECT_EQ(moved("hutch_exec_seconds_count"), 2);
  EXPECT_EQ(moved("hutch_agent_failures_total"), 1);
  EXPECT_EQ(moved("hutch_http_requests_total",
                  {R"(route="/v1/sessions/{id}/exec")", R"(method="POST")", R"(code="200")"}),
            2);
  EXPECT_EQ(moved("hutch_http_requests_total", {R"(route="unmatched")", R"(code="404")"}), 1);
  EXPECT_GE(moved("hutch_http_request_seconds_count"), 6);
  EXPECT_GE(moved("hutch_store_transaction_seconds_count", {R"(store="sqlite")"}), 3);
  EXPECT_GE(moved("hutch_webhook_deliveries_total", {R"(result="ok")"}), 1);
  EXPECT_EQ(Sum(after, "hutch_sessions", {R"(state="running")"}), 0);
  // The terminal's relay ended with its session: its gauge is back to 0.
  EXPECT_EQ(Sum(after, "hutch_open_streams", {R"(kind="terminal")"}), 0);
}

TEST_F(MetricsTest, OnlyAdminsAndTheMetricsScopeReadMetrics) {
  EXPECT_EQ(Call("POST", "/v1/users", R"({"name":"alice","role":"user"})").status, 201);
  auto tok = Call("POST", "/v1/tokens?owner=alice", R"({"name":"t"})");
  ASSERT_EQ(tok.status, 201) << tok.body;
  std::string alice(json::parse(tok.body).at("token").as_string());
  auto as_alice = HttpClient::Create(server_->url(), alice);
  ASSERT_TRUE(as_alice.ok());
  EXPECT_EQ(as_alice->Request("GET", "/metrics")->status, 403);
  // A user cannot be given the metrics scope; an admin's scraper token can.
  EXPECT_EQ(Call("POST", "/v1/tokens?owner=alice", R"({"name":"m","scopes":["metrics"]})").status,
            403);
  auto scraper = Call("POST", "/v1/tokens", R"({"name":"prom","scopes":["metrics"]})");
  ASSERT_EQ(scraper.status, 201) << scraper.body;
  auto as_scraper = HttpClient::Create(
      server_->url(), std::string(json::parse(scraper.body).at("token").as_string()));
  ASSERT_TRUE(as_scraper.ok());
  EXPECT_EQ(as_scraper->Request("GET", "/metrics")->status, 200);
  EXPECT_EQ(as_scraper->Request("GET", "/v1/sessions")->status, 403);
  auto anonymous = HttpClient::Create(server_->url(), "");
  EXPECT_EQ(anonymous->Request("GET", "/metrics")->status, 401);
}

TEST_F(MetricsTest, TheMetricsListenerServesOnlyMetricsWithoutAToken) {
  std::smatch m;
  std::string log = server_->Log();
  ASSERT_TRUE(std::regex_search(log, m, std::regex(R"(metrics on (http://[0-9.:]+)/metrics)")))
      << log;
  auto anonymous = HttpClient::Create(m[1].str(), "");
  ASSERT_TRUE(anonymous.ok());
  auto metrics = anonymous->Request("GET", "/metrics");
  ASSERT_TRUE(metrics.ok());
  EXPECT_EQ(metrics->status, 200);
  EXPECT_EQ(Promtool(metrics->body), "");
  EXPECT_EQ(anonymous->Request("GET", "/readyz")->status, 200);
  EXPECT_EQ(anonymous->Request("GET", "/healthz")->status, 200);
  // Nothing else is reachable there, with or without a token.
  EXPECT_EQ(anonymous->Request("GET", "/v1/sessions")->status, 404);
  auto admin = HttpClient::Create(m[1].str(), server_->token());
  EXPECT_EQ(admin->Request("GET", "/v1/sessions")->status, 404);
}

TEST_F(MetricsTest, ReadyzAnswersWithoutATokenWhileTheStoreAnswers) {
  auto anonymous = HttpClient::Create(server_->url(), "");
  auto r = anonymous->Request("GET", "/readyz");
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(r->status, 200) << r->body;
  EXPECT_EQ(json::parse(r->body).at("status").as_string(), "ready");
}

}  // namespace
}  // namespace hutch
