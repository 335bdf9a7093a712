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
      }
      EXPECT_FALSE(ok) << "message " << m << " cut at " << cut;
    }
  }
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

}  // namespace
}  // namespace hutch::agent
