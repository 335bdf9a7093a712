#include "agent/stream_protocol.h"

#include <gtest/gtest.h>

#include <string>

#include "agent/protocol.h"

namespace hutch::agent {
namespace {

StreamExecRequest SampleStreamExec() {
  StreamExecRequest r;
  r.exec.argv = {"/bin/sh", "-c", "stty size"};
  r.exec.env = {{"TERM", "xterm-256color"}};
  r.exec.timeout_ms = 5000;
  r.tty = true;
  r.rows = 50;
  r.cols = 132;
  r.window = 65536;
  return r;
}

TEST(StreamProtocolTest, StreamExecRoundTrips) {
  StreamExecRequest in = SampleStreamExec();
  StreamExecRequest out;
  std::string error;
  ASSERT_TRUE(DecodeStreamExecRequest(EncodeStreamExecRequest(in), &out, &error)) << error;
  EXPECT_EQ(out.exec.argv, in.exec.argv);
  EXPECT_EQ(out.exec.env, in.exec.env);
  EXPECT_EQ(out.exec.timeout_ms, 5000);
  EXPECT_TRUE(out.tty);
  EXPECT_EQ(out.rows, 50);
  EXPECT_EQ(out.cols, 132);
  EXPECT_EQ(out.window, 65536u);
}

TEST(StreamProtocolTest, StreamExecRejectsZeroWindowAndSizes) {
  std::string error;
  StreamExecRequest out;
  StreamExecRequest bad = SampleStreamExec();
  bad.window = 0;
  EXPECT_FALSE(DecodeStreamExecRequest(EncodeStreamExecRequest(bad), &out, &error));
  bad = SampleStreamExec();
  bad.window = kMaxWindow + 1;
  EXPECT_FALSE(DecodeStreamExecRequest(EncodeStreamExecRequest(bad), &out, &error));
  bad = SampleStreamExec();
  bad.rows = 0;
  EXPECT_FALSE(DecodeStreamExecRequest(EncodeStreamExecRequest(bad), &out, &error));
  bad = SampleStreamExec();
  bad.exec.argv = {};
  EXPECT_FALSE(DecodeStreamExecRequest(EncodeStreamExecRequest(bad), &out, &error));
}

ServiceSpec SampleService() {
  ServiceSpec s;
  s.name = "web";
  s.exec.argv = {"python3", "-m", "http.server"};
  s.exec.cwd = "/srv";
  s.port = 8000;
  s.restart = "on-failure";
  s.health.kind = "http";
  s.health.http_path = "/ready";
  s.health.interval_ms = 500;
  return s;
}

TEST(StreamProtocolTest, ServiceSpecAndListRoundTrip) {
  std::string error;
  ServiceSpec back;
  ASSERT_TRUE(DecodeServiceSpec(EncodeServiceSpec(SampleService()), &back, &error)) << error;
  EXPECT_EQ(back.name, "web");
  EXPECT_EQ(back.exec.argv, SampleService().exec.argv);
  EXPECT_EQ(back.exec.cwd, "/srv");
  EXPECT_EQ(back.port, 8000);
  EXPECT_EQ(back.restart, "on-failure");
  EXPECT_EQ(back.health.kind, "http");
  EXPECT_EQ(back.health.http_path, "/ready");
  EXPECT_EQ(back.health.interval_ms, 500u);
  ServiceInfo info{SampleService(), "backoff", "unhealthy", "connect: refused", 0, 4, 1, 0, 5, 6};
  std::vector<ServiceInfo> list;
  ASSERT_TRUE(DecodeServiceList(EncodeServiceList({info, info}), &list, &error)) << error;
  ASSERT_EQ(list.size(), 2u);
  EXPECT_EQ(list[1].state, "backoff");
  EXPECT_EQ(list[1].health_message, "connect: refused");
  EXPECT_EQ(list[1].restarts, 4u);
  EXPECT_EQ(list[1].next_restart_unix_ms, 6);
}

TEST(StreamProtocolTest, BadServiceSpecsAreRefusedByTheDecoder) {
  auto refused = [](ServiceSpec s) {
    std::string error;
    ServiceSpec back;
    return !DecodeServiceSpec(EncodeServiceSpec(s), &back, &error) && !error.empty();
  };
  ServiceSpec s = SampleService();
  s.name = "123";
  EXPECT_TRUE(refused(s));
  s = SampleService();
  s.name = "a/b";
  EXPECT_TRUE(refused(s));
  s = SampleService();
  s.restart = "sometimes";
  EXPECT_TRUE(refused(s));
  s = SampleService();
  s.port = 0;  // a health check needs a port
  EXPECT_TRUE(refused(s));
  s = SampleService();
  s.health.http_path = "/a b";
  EXPECT_TRUE(refused(s));
  s = SampleService();
  s.health.interval_ms = 1;
  EXPECT_TRUE(refused(s));
}

TEST(StreamProtocolTest, EveryTruncationOfEveryMessageIsAnError) {
  std::vector<ProcessInfo> list(2);
  list[0].pid = 7;
  list[0].tag = "web";
  list[0].argv = {"python3", "-m", "http.server"};
  list[1].running = false;
  list[1].exit_code = 3;
  ExitInfo exit;
  exit.exit_code = 2;
  exit.dropped_bytes = 99;
  ProcessStartRequest start;
  start.exec.argv = {"sleep", "1"};
  start.tag = "sleeper";
  std::string encoded[] = {
      EncodeStreamExecRequest(SampleStreamExec()),
      EncodeExitInfo(exit),
      EncodeProcessList(list),
      EncodeProcessStartRequest(start),
      EncodeProcessAttachRequest(ProcessAttachRequest{"web", true, 4096}),
      EncodeProcessSignalRequest(ProcessSignalRequest{"7", 2}),
      EncodeProcessStdinRequest(ProcessStdinRequest{"web", "data", true}),
      EncodeResize(24, 80),
      EncodeTcpConnectRequest(TcpConnectRequest{8888, 4096}),
      EncodeServiceSpec(SampleService()),
      EncodeServiceList({ServiceInfo{SampleService(), "running", "healthy", "GET /: 200", 9}}),
  };
  for (size_t m = 0; m < std::size(encoded); ++m) {
    const std::string& full = encoded[m];
    for (size_t cut = 0; cut < full.size(); ++cut) {
      std::string_view part(full.data(), cut);
      std::string error;
      StreamExecRequest a;
      ExitInfo b;
      std::vector<ProcessInfo> c;
      ProcessStartRequest d;
      ProcessAttachRequest e;
      ProcessSignalRequest f;
      ProcessStdinRequest g;
      uint16_t rows, cols;
      bool ok = false;
      switch (m) {
        case 0:
          ok = DecodeStreamExecRequest(part, &a, &error);
          break;
        case 1:
          ok = DecodeExitInfo(part, &b, &error);
          break;
        case 2:
          ok = DecodeProcessList(part, &c, &error);
          break;
        case 3:
          ok = DecodeProcessStartRequest(part, &d, &error);
          break;
        case 4:
          ok = DecodeProcessAttachRequest(part, &e, &error);
          break;
        case 5:
          ok = DecodeProcessSignalRequest(part, &f, &error);
          break;
        case 6:
          ok = DecodeProcessStdinRequest(part, &g, &error);
          break;
        case 7:
          ok = DecodeResize(part, &rows, &cols, &error);
          break;
        case 8: {
          TcpConnectRequest h;
          ok = DecodeTcpConnectRequest(part, &h, &error);
          break;
        }
        case 9: {
          ServiceSpec spec;
          ok = DecodeServiceSpec(part, &spec, &error);
          break;
        }
        case 10: {
          std::vector<ServiceInfo> services;
          ok = DecodeServiceList(part, &services, &error);
          break;
        }
      }
      EXPECT_FALSE(ok) << "message " << m << " cut at " << cut;
    }
  }
}

TEST(StreamProtocolTest, TcpConnectRoundTripsAndRejectsBadPortsAndWindows) {
  TcpConnectRequest in{65535, 1234};
  TcpConnectRequest out;
  std::string error;
  ASSERT_TRUE(DecodeTcpConnectRequest(EncodeTcpConnectRequest(in), &out, &error)) << error;
  EXPECT_EQ(out.port, 65535);
  EXPECT_EQ(out.window, 1234u);
  EXPECT_FALSE(DecodeTcpConnectRequest(EncodeTcpConnectRequest({0, 1234}), &out, &error));
  EXPECT_NE(error.find("port"), std::string::npos) << error;
  EXPECT_FALSE(DecodeTcpConnectRequest(EncodeTcpConnectRequest({80, 0}), &out, &error));
  EXPECT_FALSE(
      DecodeTcpConnectRequest(EncodeTcpConnectRequest({80, kMaxWindow + 1}), &out, &error));
  // A port above 65535 on the wire (the field is 32 bits).
  std::string big = EncodeTcpConnectRequest({80, 1234});
  big[2] = 1;
  EXPECT_FALSE(DecodeTcpConnectRequest(big, &out, &error));
}

TEST(StreamProtocolTest, ProcessListRoundTrips) {
  std::vector<ProcessInfo> in(1);
  in[0].pid = 42;
  in[0].tag = "job";
  in[0].argv = {"make", "-j2"};
  in[0].running = false;
  in[0].exit_code = 0;
  in[0].timed_out = true;
  in[0].started_unix_ms = 1700000000000;
  in[0].ended_unix_ms = 1700000001000;
  in[0].output_bytes = 5u << 20;
  in[0].dropped_bytes = 4u << 20;
  std::vector<ProcessInfo> out;
  std::string error;
  ASSERT_TRUE(DecodeProcessList(EncodeProcessList(in), &out, &error)) << error;
  ASSERT_EQ(out.size(), 1u);
  EXPECT_EQ(out[0].pid, 42);
  EXPECT_EQ(out[0].tag, "job");
  EXPECT_EQ(out[0].argv, in[0].argv);
  EXPECT_FALSE(out[0].running);
  EXPECT_TRUE(out[0].timed_out);
  EXPECT_EQ(out[0].ended_unix_ms, 1700000001000);
  EXPECT_EQ(out[0].dropped_bytes, 4u << 20);
}

TEST(StreamProtocolTest, ProcessListCountBeyondThePayloadIsRejected) {
  std::string payload = EncodeU32(1000000);
  std::vector<ProcessInfo> out;
  std::string error;
  EXPECT_FALSE(DecodeProcessList(payload, &out, &error));
}

TEST(StreamProtocolTest, TagsAreNamesNotPids) {
  EXPECT_TRUE(IsValidTag("web-1"));
  EXPECT_TRUE(IsValidTag("a.b_c"));
  EXPECT_FALSE(IsValidTag(""));
  EXPECT_FALSE(IsValidTag("123"));  // would be taken for a pid
  EXPECT_FALSE(IsValidTag("a b"));
  EXPECT_FALSE(IsValidTag("a/b"));
  EXPECT_FALSE(IsValidTag(std::string(kMaxTagLen + 1, 'a')));
  ProcessStartRequest start;
  start.exec.argv = {"true"};
  start.tag = "42";
  ProcessStartRequest out;
  std::string error;
  EXPECT_FALSE(DecodeProcessStartRequest(EncodeProcessStartRequest(start), &out, &error));
}

TEST(StreamProtocolTest, SignalsOutOfRangeAreRejected) {
  ProcessSignalRequest out;
  std::string error;
  EXPECT_FALSE(DecodeProcessSignalRequest(EncodeProcessSignalRequest({"web", 0}), &out, &error));
  EXPECT_FALSE(DecodeProcessSignalRequest(EncodeProcessSignalRequest({"web", 65}), &out, &error));
  EXPECT_FALSE(DecodeProcessSignalRequest(EncodeProcessSignalRequest({"", 9}), &out, &error));
  EXPECT_TRUE(DecodeProcessSignalRequest(EncodeProcessSignalRequest({"web", 9}), &out, &error));
}

TEST(StreamProtocolTest, PortListRoundTripsAndRejectsBadCounts) {
  std::vector<ListeningPort> in{{22, "0.0.0.0"}, {8000, "127.0.0.1"}, {9006, "::"}};
  std::vector<ListeningPort> out;
  std::string error;
  ASSERT_TRUE(DecodePortList(EncodePortList(in), &out, &error)) << error;
  EXPECT_EQ(out, in);
  std::string bad = EncodePortList(in);
  bad[0] = '\x7f';  // a count far beyond the payload
  EXPECT_FALSE(DecodePortList(bad, &out, &error));
  EXPECT_FALSE(DecodePortList(EncodePortList({{0, "x"}}), &out, &error));
}

TEST(StreamProtocolTest, LogReadRoundTripsAndBoundsItsChunk) {
  std::string error;
  LogReadRequest req;
  ASSERT_TRUE(DecodeLogReadRequest(EncodeLogReadRequest({1234, 4096}), &req, &error)) << error;
  EXPECT_EQ(req.offset, 1234u);
  EXPECT_EQ(req.max_bytes, 4096u);
  EXPECT_FALSE(DecodeLogReadRequest(EncodeLogReadRequest({0, 0}), &req, &error));
  EXPECT_FALSE(DecodeLogReadRequest(EncodeLogReadRequest({0, kMaxLogChunk + 1}), &req, &error));
  LogChunk chunk;
  ASSERT_TRUE(DecodeLogChunk(EncodeLogChunk({"ready\n", 99}), &chunk, &error)) << error;
  EXPECT_EQ(chunk.data, "ready\n");
  EXPECT_EQ(chunk.size, 99u);
  EXPECT_FALSE(DecodeLogChunk(EncodeLogChunk({"x", 1}) + "extra", &chunk, &error));
}

TEST(StreamProtocolTest, ProcNetTcpGivesTheListenersOnly) {
  // Captured from a sandbox: a listener on 127.0.0.1:8000, one on 0.0.0.0:22, an established
  // connection (st 01) that must not count.
  const char* v4 =
      "  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout "
      "inode\n"
      "   0: 0100007F:1F40 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 "
      "1 1 0000000000000000 100 0 0 10 0\n"
      "   1: 00000000:0016 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 "
      "2 1 0000000000000000 100 0 0 10 0\n"
      "   2: 0100007F:1F40 0100007F:D2A4 01 00000000:00000000 00:00000000 00000000     0        0 "
      "3 1 0000000000000000 20 4 30 10 -1\n"
      "garbage line\n";
  const char* v6 =
      "  sl  local_address                         remote_address                        st\n"
      "   0: 00000000000000000000000000000000:232E 00000000000000000000000000000000:0000 0A\n"
      "   1: 00000000000000000000000001000000:0050 00000000000000000000000000000000:0000 0A\n";
  std::vector<ListeningPort> out;
  ParseProcNetTcp(v4, false, &out);
  ParseProcNetTcp(v6, true, &out);
  std::vector<ListeningPort> want{{8000, "127.0.0.1"}, {22, "0.0.0.0"}, {9006, "::"}, {80, "::1"}};
  EXPECT_EQ(out, want);
}

}  // namespace
}  // namespace hutch::agent
