// Streaming processes end to end (issue 5): SSE and WebSocket exec, PTYs, background processes,
// snippets, interrupt, timeouts, session logs, backpressure and many concurrent streams, against
// a real `hutch serve` with real sandboxes and a real WebSocket client.
#include <unistd.h>

#include <gtest/gtest.h>

#include <atomic>
#include <boost/asio.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/websocket.hpp>
#include <chrono>
#include <fstream>
#include <future>
#include <iostream>
#include <thread>

#include "cli/http_client.h"
#include "cli/sse.h"
#include "cli/ws_client.h"
#include "testing/exec_socket_util.h"
#include "testing/server_process.h"
#include "testing/session_fixture.h"
#include "testing/test_util.h"

namespace hutch {
namespace {

using client::ApiClient;
using client::ExecSocket;
using client::HttpClient;
using hutch::testing::ReadStdoutUntil;

json::object Body(std::string_view text) { return json::parse(text).as_object(); }

struct WsOutcome {
  std::string out;
  std::string err;
  json::object status;
  bool got_status = false;
};

// Reads frames until the status frame (or the close, or the timeout).
WsOutcome ReadUntilStatus(ExecSocket& s, int64_t timeout_ms = 30000) {
  WsOutcome o;
  auto until = std::chrono::steady_clock::now() + std::chrono::milliseconds(timeout_ms);
  while (std::chrono::steady_clock::now() < until) {
    auto f = s.Read(100);
    if (!f.ok()) continue;  // nothing yet
    if (!f->has_value()) break;
    auto& fr = **f;
    if (fr.channel == client::kChannelStdout) o.out += fr.data;
    if (fr.channel == client::kChannelStderr) o.err += fr.data;
    if (fr.channel == client::kChannelStatus) {
      o.status = json::parse(fr.data).as_object();
      o.got_status = true;
      break;
    }
  }
  return o;
}

class StreamsTest : public hutch::testing::SessionFixture {
 protected:
  StreamsTest() : SessionFixture("streams") {}

  std::unique_ptr<ExecSocket> OpenWs(std::string_view spec) {
    auto s = ExecSocket::Open(server_->url(), server_->token(), id_, Body(spec));
    EXPECT_TRUE(s.ok()) << s.status().ToString();
    return s.ok() ? std::move(*s) : nullptr;
  }

  // Runs a shell command to completion and answers its stdout.
  std::string Sh(const std::string& command) {
    json::object body;
    body["command"] = command;
    auto r = Api().Exec(id_, body);
    EXPECT_TRUE(r.ok()) << r.status().ToString();
    return r.ok() ? r->stdout_data : "";
  }

  // Names of the processes in the sandbox.
  std::string ProcessNames() { return Sh("for p in /proc/[0-9]*; do cat $p/comm; done"); }
};

TEST_F(StreamsTest, SseExecKeepsEachStreamInOrderAndEndsWithTheExitCode) {
  auto http = HttpClient::Create(server_->url(), server_->token());
  ASSERT_TRUE(http.ok());
  std::string out, err;
  json::object exit;
  client::SseParser parser;
  auto r = http->Stream(
      "POST", "/v1/sessions/" + id_ + "/exec", {{"Accept", "text/event-stream"}},
      [&](std::string_view data) {
        parser.Feed(data, [&](const client::SseEvent& e) {
          json::object d = json::parse(e.data).as_object();
          if (e.event == "stdout") out += d.at("data").as_string();
          if (e.event == "stderr") err += d.at("data").as_string();
          if (e.event == "exit") exit = d;
        });
        return true;
      },
      R"({"command": "for i in 1 2 3 4 5; do echo out$i; echo err$i >&2; done; exit 7"})");
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_EQ(r->status, 200) << r->body;
  EXPECT_EQ(out, "out1\nout2\nout3\nout4\nout5\n");
  EXPECT_EQ(err, "err1\nerr2\nerr3\nerr4\nerr5\n");
  ASSERT_TRUE(exit.contains("exit_code"));
  EXPECT_EQ(exit.at("exit_code").as_int64(), 7);
}

TEST_F(StreamsTest, SseExecRejectsABadSpecWithTheErrorShape) {
  auto http = HttpClient::Create(server_->url(), server_->token());
  ASSERT_TRUE(http.ok());
  auto r = http->Request("POST", "/v1/sessions/" + id_ + "/exec?stream=true", R"({"cmd": []})");
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(r->status, 400);
  EXPECT_NE(r->body.find("invalid_argument"), std::string::npos) << r->body;
}

TEST_F(StreamsTest, WebSocketStdinRoundTripsThroughCat) {
  auto ws = OpenWs(R"({"cmd": ["cat"]})");
  ASSERT_TRUE(ws);
  // More than the agent's stdin window (256 KiB), so credit has to come back.
  std::string sent;
  for (int i = 0; sent.size() < 600 * 1024; ++i) sent += "line " + std::to_string(i) + "\n";
  for (size_t off = 0; off < sent.size(); off += 10000)
    ASSERT_TRUE(ws->SendStdin(std::string_view(sent).substr(off, 10000)).ok());
  ASSERT_TRUE(ws->CloseStdin().ok());
  WsOutcome o = ReadUntilStatus(*ws);
  ASSERT_TRUE(o.got_status);
  EXPECT_EQ(o.status.at("exit_code").as_int64(), 0);
  EXPECT_EQ(o.out.size(), sent.size());
  EXPECT_TRUE(o.out == sent);
}

TEST_F(StreamsTest, WebSocketReportsExitCodesAndSignals) {
  auto ws = OpenWs(R"({"command": "echo bye >&2; exit 5"})");
  ASSERT_TRUE(ws);
  WsOutcome o = ReadUntilStatus(*ws);
  ASSERT_TRUE(o.got_status);
  EXPECT_EQ(o.status.at("exit_code").as_int64(), 5);
  EXPECT_EQ(o.err, "bye\n");

  ws = OpenWs(R"({"cmd": ["sleep", "100"]})");
  ASSERT_TRUE(ws);
  ASSERT_TRUE(ws->Signal("TERM").ok());
  o = ReadUntilStatus(*ws);
  ASSERT_TRUE(o.got_status);
  EXPECT_EQ(o.status.at("signal").as_int64(), 15);
  EXPECT_EQ(o.status.at("exit_code").as_int64(), -1);
}

TEST_F(StreamsTest, WebSocketBadSpecAnswersAnErrorStatus) {
  auto ws = OpenWs(R"({"cmd": ["true"], "tty": {"rows": 0}})");
  ASSERT_TRUE(ws);
  WsOutcome o = ReadUntilStatus(*ws);
  ASSERT_TRUE(o.got_status);
  EXPECT_EQ(o.status.at("error").at("code").as_string(), "invalid_argument");
}

TEST_F(StreamsTest, WebSocketOnAMissingSessionIs404) {
  auto s = ExecSocket::Open(server_->url(), server_->token(), "ses_aaaaaaaaaaaaaaaa",
                            Body(R"({"cmd": ["true"]})"));
  ASSERT_FALSE(s.ok());
  EXPECT_EQ(s.status().code(), Code::kNotFound) << s.status().ToString();
}

TEST_F(StreamsTest, TtyReportsATerminalOnlyWithAPty) {
  auto ws = OpenWs(R"({"cmd": ["tty"], "tty": {"rows": 24, "cols": 80}})");
  ASSERT_TRUE(ws);
  WsOutcome o = ReadUntilStatus(*ws);
  ASSERT_TRUE(o.got_status);
  EXPECT_EQ(o.status.at("exit_code").as_int64(), 0);
  EXPECT_EQ(o.out.rfind("/dev/pts/", 0), 0u) << o.out;

  ws = OpenWs(R"({"cmd": ["tty"]})");
  ASSERT_TRUE(ws);
  o = ReadUntilStatus(*ws);
  ASSERT_TRUE(o.got_status);
  EXPECT_EQ(o.status.at("exit_code").as_int64(), 1);
  EXPECT_NE(o.out.find("not a tty"), std::string::npos) << o.out;
}

// Closing a terminal's WebSocket ends its shell, and the jobs it started too: job control puts
// each (a background one as well) in a process group of its own, outside the shell's.
TEST_F(StreamsTest, ClosingATerminalEndsItsShellAndItsJobs) {
  auto ws = OpenWs(R"({"cmd": ["bash", "-i"], "tty": {"rows": 24, "cols": 80}})");
  ASSERT_TRUE(ws);
  // Printed so that the echoed line does not hold the needle.
  ASSERT_TRUE(ws->SendStdin("sleep 778 & printf 'pids-%s-%s-%s\\n' $$ $! end\n").ok());
  std::string out;
  ASSERT_TRUE(ReadStdoutUntil(*ws, &out, "-end\r\n")) << out;
  size_t end = out.find("-end\r\n");
  size_t at = out.rfind("pids-", end) + 5;
  std::string shell = out.substr(at, out.find('-', at) - at);
  std::string job = out.substr(at + shell.size() + 1, end - at - shell.size() - 1);
  ASSERT_FALSE(shell.empty()) << out;
  ASSERT_FALSE(job.empty()) << out;
  // The state of each (R, S, …; nothing once it is gone, Z while it waits for its reaper).
  std::string probe = "for p in " + shell + " " + job +
                      "; do echo $p-$(cut -d' ' -f3 /proc/$p/stat 2>/dev/null); done";
  std::string before = Sh(probe);
  EXPECT_EQ(before.find(shell + "-\n"), std::string::npos) << before;
  EXPECT_EQ(before.find(job + "-\n"), std::string::npos) << before;
  ws->Close();
  std::string after;
  auto until = std::chrono::steady_clock::now() + std::chrono::seconds(5);
  for (;;) {
    after = Sh(probe);
    bool gone = after == shell + "-\n" + job + "-\n";
    if (gone || std::chrono::steady_clock::now() >= until) break;
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  EXPECT_EQ(after, shell + "-\n" + job + "-\n") << "left running 5 s after the close";
}

TEST_F(StreamsTest, PtyResizeReachesSttySize) {
  auto ws =
      OpenWs(R"({"command": "stty size; read x; stty size", "tty": {"rows": 24, "cols": 80}})");
  ASSERT_TRUE(ws);
  std::string out;
  ASSERT_TRUE(ReadStdoutUntil(*ws, &out, "24 80")) << out;
  ASSERT_TRUE(ws->Resize(50, 132).ok());
  // The resize and the newline travel in order on one agent connection.
  ASSERT_TRUE(ws->SendStdin("\n").ok());
  WsOutcome o = ReadUntilStatus(*ws);
  ASSERT_TRUE(o.got_status);
  EXPECT_NE((out + o.out).find("50 132"), std::string::npos) << out << o.out;
}

TEST_F(StreamsTest, BackgroundProcessOutputReplaysAfterTheClientWentAway) {
  auto api = Api();
  auto p = api.Call("POST", "/v1/sessions/" + id_ + "/processes",
                    Body(R"({"command": "for i in $(seq 1 20); do echo line$i; sleep 0.05; done",
                             "tag": "ticker"})"));
  ASSERT_TRUE(p.ok()) << p.status().ToString();
  EXPECT_EQ(p->at("tag").as_string(), "ticker");
  EXPECT_EQ(p->at("state").as_string(), "running");

  // Follow, take the first piece, hang up.
  {
    auto http = HttpClient::Create(server_->url(), server_->token());
    ASSERT_TRUE(http.ok());
    std::string first;
    auto r = http->Stream("GET", "/v1/sessions/" + id_ + "/processes/ticker/output?follow=true", {},
                          [&](std::string_view d) {
                            first += d;
                            return false;
                          });
    ASSERT_TRUE(r.ok()) << r.status().ToString();
    EXPECT_EQ(first.rfind("line1\n", 0), 0u) << first;
  }
  // Reattach: the whole output from the ring, then live until the end.
  auto http = HttpClient::Create(server_->url(), server_->token());
  ASSERT_TRUE(http.ok());
  std::string all;
  auto r = http->Stream("GET", "/v1/sessions/" + id_ + "/processes/ticker/output?follow=true", {},
                        [&](std::string_view d) {
                          all += d;
                          return true;
                        });
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  std::string want;
  for (int i = 1; i <= 20; ++i) want += "line" + std::to_string(i) + "\n";
  EXPECT_EQ(all, want);

  auto list = api.Call("GET", "/v1/sessions/" + id_ + "/processes");
  ASSERT_TRUE(list.ok());
  const auto& procs = list->at("processes").as_array();
  ASSERT_EQ(procs.size(), 1u);
  EXPECT_EQ(procs[0].at("state").as_string(), "exited");
  EXPECT_EQ(procs[0].at("exit_code").as_int64(), 0);
  EXPECT_FALSE(procs[0].at("ended_at").is_null());

  // After the end, by pid too.
  std::string pid = std::to_string(procs[0].at("pid").as_int64());
  std::string again;
  r = http->Stream("GET", "/v1/sessions/" + id_ + "/processes/" + pid + "/output", {},
                   [&](std::string_view d) {
                     again += d;
                     return true;
                   });
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(again, want);
}

TEST_F(StreamsTest, BackgroundProcessTakesStdinAndSignals) {
  auto api = Api();
  ASSERT_TRUE(api.Call("POST", "/v1/sessions/" + id_ + "/processes",
                       Body(R"({"cmd": ["cat"], "tag": "echoer"})"))
                  .ok());
  auto w = api.Call("POST", "/v1/sessions/" + id_ + "/processes/echoer/stdin",
                    Body(R"({"data": "abc\n", "close": true})"));
  ASSERT_TRUE(w.ok()) << w.status().ToString();
  auto http = HttpClient::Create(server_->url(), server_->token());
  ASSERT_TRUE(http.ok());
  std::string out;
  auto r = http->Stream("GET", "/v1/sessions/" + id_ + "/processes/echoer/output?follow=1", {},
                        [&](std::string_view d) {
                          out += d;
                          return true;
                        });
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(out, "abc\n");

  ASSERT_TRUE(api.Call("POST", "/v1/sessions/" + id_ + "/processes",
                       Body(R"({"cmd": ["sleep", "1000"], "tag": "sleeper"})"))
                  .ok());
  auto k = api.Call("POST", "/v1/sessions/" + id_ + "/processes/sleeper/signal",
                    Body(R"({"signal": "KILL"})"));
  ASSERT_TRUE(k.ok()) << k.status().ToString();
  json::object p;
  for (int i = 0; i < 100; ++i) {
    auto g = api.Call("GET", "/v1/sessions/" + id_ + "/processes/sleeper");
    ASSERT_TRUE(g.ok());
    p = *g;
    if (p.at("state").as_string() == "exited") break;
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  EXPECT_EQ(p.at("state").as_string(), "exited");
  EXPECT_EQ(p.at("signal").as_int64(), 9);

  // Errors: a duplicate tag, a missing process, a bad signal.
  EXPECT_EQ(api.Call("POST", "/v1/sessions/" + id_ + "/processes",
                     Body(R"({"cmd": ["true"], "tag": "sleeper"})"))
                .status()
                .code(),
            Code::kInvalidArgument);
  EXPECT_EQ(api.Call("GET", "/v1/sessions/" + id_ + "/processes/nobody/output").status().code(),
            Code::kNotFound);
  EXPECT_EQ(api.Call("POST", "/v1/sessions/" + id_ + "/processes/sleeper/signal",
                     Body(R"({"signal": "NOPE"})"))
                .status()
                .code(),
            Code::kInvalidArgument);
}

TEST_F(StreamsTest, TimeoutKillsGrandchildrenEvenWhenTheyIgnoreTerm) {
  auto api = Api();
  auto r = api.Exec(id_, Body(R"({"command": "sh -c 'trap \"\" TERM; sleep 1000' & sleep 1000",
                                  "timeout_seconds": 1})"));
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_TRUE(r->timed_out);
  EXPECT_EQ(ProcessNames().find("sleep"), std::string::npos) << ProcessNames();

  // The same over WebSocket: the status says timed_out, and nothing is left.
  auto ws = OpenWs(R"({"command": "sh -c 'trap \"\" TERM; sleep 1000' & sleep 1000",
                       "timeout_seconds": 1})");
  ASSERT_TRUE(ws);
  WsOutcome o = ReadUntilStatus(*ws);
  ASSERT_TRUE(o.got_status);
  EXPECT_TRUE(o.status.at("timed_out").as_bool());
  std::string names;
  for (int i = 0; i < 100; ++i) {
    names = ProcessNames();
    if (names.find("sleep") == std::string::npos) break;
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  EXPECT_EQ(names.find("sleep"), std::string::npos) << names;
}

TEST_F(StreamsTest, InterruptStopsARunningPythonLoop) {
  auto fut = std::async(std::launch::async, [this] {
    return Api().Call("POST", "/v1/sessions/" + id_ + "/run",
                      Body(R"({"language": "python", "code": "while True: pass"})"));
  });
  bool running = false;
  for (int i = 0; i < 200 && !running; ++i) {
    running = ProcessNames().find("python") != std::string::npos;
    if (!running) std::this_thread::sleep_for(std::chrono::milliseconds(25));
  }
  ASSERT_TRUE(running);
  // Python installs its SIGINT handler at start: give it that moment.
  std::this_thread::sleep_for(std::chrono::milliseconds(300));
  auto i = Api().Call("POST", "/v1/sessions/" + id_ + "/interrupt");
  ASSERT_TRUE(i.ok()) << i.status().ToString();
  EXPECT_GE(i->at("interrupted").as_int64(), 1);
  ASSERT_EQ(fut.wait_for(std::chrono::seconds(20)), std::future_status::ready);
  auto r = fut.get();
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_NE(std::string(r->at("stderr").as_string()).find("KeyboardInterrupt"), std::string::npos)
      << json::serialize(*r);
}

TEST_F(StreamsTest, RunUsesTheImagesInterpreterOrSays400) {
  auto api = Api();
  auto r = api.Call("POST", "/v1/sessions/" + id_ + "/run",
                    Body(R"json({"language": "sh", "code": "echo $((6*7))"})json"));
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_EQ(r->at("stdout").as_string(), "42\n");
  r = api.Call(
      "POST", "/v1/sessions/" + id_ + "/run",
      Body(R"json({"language": "python", "code": "print(1)", "env": {"PATH": "/nowhere"}})json"));
  EXPECT_EQ(r.status().code(), Code::kInvalidArgument);
  EXPECT_NE(r.status().message().find("python"), std::string::npos) << r.status().message();
  r = api.Call("POST", "/v1/sessions/" + id_ + "/run",
               Body(R"({"language": "cobol", "code": "x"})"));
  EXPECT_EQ(r.status().code(), Code::kInvalidArgument);
}

TEST_F(StreamsTest, SessionLogsShowTheAgentsOutput) {
  auto http = HttpClient::Create(server_->url(), server_->token());
  ASSERT_TRUE(http.ok());
  auto r = http->Request("GET", "/v1/sessions/" + id_ + "/logs");
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(r->status, 200);
  EXPECT_NE(r->body.find("hutch-agent " + id_ + ": ready"), std::string::npos) << r->body;
  // With follow it ends when the session does.
  auto fut = std::async(std::launch::async, [this] {
    auto h = HttpClient::Create(server_->url(), server_->token());
    std::string all;
    auto rr =
        h->Stream("GET", "/v1/sessions/" + id_ + "/logs?follow=true", {}, [&](std::string_view d) {
          all += d;
          return true;
        });
    return rr.ok() ? all : rr.status().ToString();
  });
  std::this_thread::sleep_for(std::chrono::milliseconds(300));
  ASSERT_TRUE(Api().DeleteSession(id_).ok());
  ASSERT_EQ(fut.wait_for(std::chrono::seconds(20)), std::future_status::ready);
  EXPECT_NE(fut.get().find("ready"), std::string::npos);
}

// A paused session's agent is frozen and a stopped one's is gone: the log is still there (the
// driver reads it on its control plane).
TEST_F(StreamsTest, SessionLogsStayReadableWhenPausedAndStopped) {
  auto http = HttpClient::Create(server_->url(), server_->token());
  ASSERT_TRUE(http.ok());
  for (const char* action : {"pause", "stop"}) {
    auto moved = Api().Call("POST", "/v1/sessions/" + id_ + "/" + action);
    ASSERT_TRUE(moved.ok()) << action << ": " << moved.status().ToString();
    auto r = http->Request("GET", "/v1/sessions/" + id_ + "/logs");
    ASSERT_TRUE(r.ok()) << r.status().ToString();
    EXPECT_EQ(r->status, 200) << action;
    EXPECT_NE(r->body.find("hutch-agent " + id_ + ": ready"), std::string::npos)
        << action << ": " << r->body;
    if (std::string(action) == "pause") {
      auto resumed = Api().Call("POST", "/v1/sessions/" + id_ + "/resume");
      ASSERT_TRUE(resumed.ok()) << resumed.status().ToString();
    }
  }
}

TEST_F(StreamsTest, HundredConcurrentStreamsOnOneSession) {
  constexpr int kStreams = 100;
  std::vector<std::unique_ptr<ExecSocket>> sockets;
  for (int i = 0; i < kStreams; ++i) {
    auto ws = OpenWs(R"({"command": "read x; echo got-$x"})");
    ASSERT_TRUE(ws) << "stream " << i;
    sockets.push_back(std::move(ws));
  }
  // All are open (their commands wait for stdin) before any is answered.
  for (int i = 0; i < kStreams; ++i)
    ASSERT_TRUE(sockets[static_cast<size_t>(i)]->SendStdin(std::to_string(i) + "\n").ok());
  for (int i = 0; i < kStreams; ++i) {
    WsOutcome o = ReadUntilStatus(*sockets[static_cast<size_t>(i)]);
    ASSERT_TRUE(o.got_status) << "stream " << i;
    EXPECT_EQ(o.status.at("exit_code").as_int64(), 0);
    EXPECT_EQ(o.out, "got-" + std::to_string(i) + "\n");
  }
}

// VmRSS of a process in KiB, from a /proc status text.
int64_t RssKib(const std::string& status) {
  size_t at = status.find("VmRSS:");
  if (at == std::string::npos) return -1;
  return std::stoll(status.substr(at + 6));
}

TEST_F(StreamsTest, SlowReaderPausesAFastProducerAndMemoryStaysBounded) {
  namespace asio = boost::asio;
  namespace beast = boost::beast;
  namespace websocket = beast::websocket;
  std::string addr = server_->url().substr(7);
  std::string host = addr.substr(0, addr.rfind(':'));
  std::string port = addr.substr(addr.rfind(':') + 1);
  auto server_rss = [&] {
    std::ifstream f("/proc/" + std::to_string(server_->pid()) + "/status");
    std::string s((std::istreambuf_iterator<char>(f)), std::istreambuf_iterator<char>());
    return RssKib(s);
  };
  int64_t server_before = server_rss();

  // A plain Beast client that reads 1 KiB per second: nothing buffers on its side.
  asio::io_context io;
  websocket::stream<beast::tcp_stream> ws(io);
  asio::ip::tcp::resolver resolver(io);
  beast::get_lowest_layer(ws).connect(resolver.resolve(host, port));
  ws.set_option(websocket::stream_base::decorator([this](websocket::request_type& req) {
    req.set(beast::http::field::authorization, "Bearer " + server_->token());
  }));
  ws.handshake(addr, "/v1/sessions/" + id_ + "/exec/ws");
  ws.text(true);
  ws.write(
      asio::buffer(std::string(R"({"cmd": ["dd", "if=/dev/zero", "bs=65536", "status=none"]})")));
  beast::flat_buffer buffer;
  size_t got = 0;
  for (int i = 0; i < 6; ++i) {
    got += ws.read_some(buffer, 1024);
    buffer.consume(buffer.size());
    std::this_thread::sleep_for(std::chrono::seconds(1));
  }
  EXPECT_GT(got, 0u);
  // dd has written only what the pipe, the agent's window, the sockets' buffers and the
  // server's one frame in flight hold — not the gigabytes it writes in 6 s when unhindered.
  std::string io_text =
      Sh("for p in /proc/[0-9]*; do [ \"$(cat $p/comm)\" = dd ] && grep wchar $p/io; done");
  ASSERT_NE(io_text.find("wchar:"), std::string::npos) << io_text;
  int64_t written = std::stoll(io_text.substr(io_text.find("wchar:") + 6));
  EXPECT_LT(written, int64_t{64} << 20) << "dd wrote " << written << " bytes";
  int64_t agent_rss = RssKib(Sh("cat /proc/1/status"));
  EXPECT_GT(agent_rss, 0);
  EXPECT_LT(agent_rss, 64 * 1024) << "hutch-agent RSS " << agent_rss << " KiB";
  int64_t server_after = server_rss();
  std::cout << "slow reader: dd wrote " << written << " bytes; hutch-agent RSS " << agent_rss
            << " KiB; server RSS " << server_before << " -> " << server_after << " KiB\n";
  EXPECT_LT(server_after - server_before, 64 * 1024)
      << "server RSS " << server_before << " → " << server_after << " KiB";
  beast::get_lowest_layer(ws).close();
}

}  // namespace
}  // namespace hutch
