#include "agent/protocol.h"

#include <sys/socket.h>
#include <unistd.h>

#include <random>
#include <string>
#include <thread>

#include <gtest/gtest.h>

#include "agent/config.h"
#include "agent/frame_io.h"
#include "agent/wire.h"

namespace hutch::agent {
namespace {

core::ExecRequest SampleRequest() {
  core::ExecRequest r;
  r.argv = {"/bin/sh", "-c", "echo hi; cat"};
  r.env = {{"A", "1"}, {"EMPTY", ""}, {"UTF8", "h\xc3\xa9"}};
  r.cwd = "/tmp";
  r.stdin_data = std::string("in\0put", 6);
  r.timeout_ms = 1500;
  r.max_output_bytes = 12345;
  return r;
}

core::ExecResult SampleResult() {
  core::ExecResult r;
  r.exit_code = -1;
  r.signal = 9;
  r.stdout_data = std::string(1000, 'x');
  r.stderr_data = "err\n";
  r.timed_out = true;
  r.truncated = true;
  r.duration_ms = 1234567890123;
  return r;
}

TEST(WireTest, IntegersAreLittleEndian) {
  WireWriter w;
  w.U32(0x01020304);
  w.U64(0x1122334455667788ull);
  EXPECT_EQ(w.data(), std::string("\x04\x03\x02\x01\x88\x77\x66\x55\x44\x33\x22\x11", 12));
  WireReader r(w.data());
  uint32_t a;
  uint64_t b;
  ASSERT_TRUE(r.U32(&a));
  ASSERT_TRUE(r.U64(&b));
  EXPECT_EQ(a, 0x01020304u);
  EXPECT_EQ(b, 0x1122334455667788ull);
  EXPECT_TRUE(r.ExpectEnd());
}

TEST(WireTest, HugeListCountIsRejectedBeforeAllocating) {
  WireWriter w;
  w.U32(0xffffffff);  // a count no input of this size can hold
  WireReader r(w.data());
  std::vector<std::string> list;
  EXPECT_FALSE(r.StringList(&list, 1u << 31, 1u << 31));
  EXPECT_NE(r.error().find("out of range"), std::string::npos) << r.error();
}

TEST(WireTest, StringOverItsLimitIsRejected) {
  WireWriter w;
  w.String("abcdef");
  WireReader r(w.data());
  std::string s;
  EXPECT_FALSE(r.String(&s, 5));
}

TEST(WireTest, BoolOutOfRangeIsRejected) {
  WireReader r(std::string_view("\x02", 1));
  bool b;
  EXPECT_FALSE(r.Bool(&b));
}

TEST(ProtocolTest, ExecRequestRoundTrips) {
  core::ExecRequest in = SampleRequest();
  core::ExecRequest out;
  std::string error;
  ASSERT_TRUE(DecodeExecRequest(EncodeExecRequest(in), &out, &error)) << error;
  EXPECT_EQ(out.argv, in.argv);
  EXPECT_EQ(out.env, in.env);
  EXPECT_EQ(out.cwd, in.cwd);
  EXPECT_EQ(out.stdin_data, in.stdin_data);
  EXPECT_EQ(out.timeout_ms, in.timeout_ms);
  EXPECT_EQ(out.max_output_bytes, in.max_output_bytes);
}

TEST(ProtocolTest, ExecResultRoundTrips) {
  core::ExecResult in = SampleResult();
  core::ExecResult out;
  std::string error;
  ASSERT_TRUE(DecodeExecResult(EncodeExecResult(in), &out, &error)) << error;
  EXPECT_EQ(out.exit_code, in.exit_code);
  EXPECT_EQ(out.signal, in.signal);
  EXPECT_EQ(out.stdout_data, in.stdout_data);
  EXPECT_EQ(out.stderr_data, in.stderr_data);
  EXPECT_EQ(out.timed_out, in.timed_out);
  EXPECT_EQ(out.truncated, in.truncated);
  EXPECT_EQ(out.duration_ms, in.duration_ms);
}

TEST(ProtocolTest, HelloAndErrorRoundTrip) {
  Hello h{7, "peer", ""};
  Hello h2;
  std::string error;
  ASSERT_TRUE(DecodeHello(EncodeHello(h), &h2, &error)) << error;
  EXPECT_EQ(h2.version, 7u);
  EXPECT_EQ(h2.peer, "peer");

  ErrorMessage e{ErrorCode::kVersionMismatch, "nope"};
  ErrorMessage e2;
  ASSERT_TRUE(DecodeError(EncodeError(e), &e2, &error)) << error;
  EXPECT_EQ(e2.code, ErrorCode::kVersionMismatch);
  EXPECT_EQ(e2.message, "nope");
  EXPECT_EQ(ErrorCodeName(static_cast<ErrorCode>(999)), "unknown");
}

TEST(ProtocolTest, HelloCarriesTheSecretOnlyWhenThereIsOne) {
  std::string error;
  Hello with{kProtocolVersion, "hutch", std::string(64, 'a')};
  Hello out;
  ASSERT_TRUE(DecodeHello(EncodeHello(with), &out, &error)) << error;
  EXPECT_EQ(out.secret, with.secret);
  // Without one, the Hello is the one agents made before secrets decode.
  Hello without{kProtocolVersion, "hutch", ""};
  EXPECT_EQ(EncodeHello(without).size(), 4u + 4u + 5u);
  ASSERT_TRUE(DecodeHello(EncodeHello(without), &out, &error)) << error;
  EXPECT_TRUE(out.secret.empty());
  EXPECT_FALSE(DecodeHello(EncodeHello(with) + "x", &out, &error));
}

TEST(ProtocolTest, AgentAcceptsOnlyTheSandboxSecret) {
  const std::string secret(64, 'c');
  ErrorMessage refusal;
  EXPECT_TRUE(AcceptClientHello({kProtocolVersion, "hutch", secret}, secret, "agent", &refusal));
  std::string wrong = secret;
  wrong.back() = 'd';
  for (const std::string& given : {std::string(), wrong, secret.substr(1), secret + "c"}) {
    EXPECT_FALSE(AcceptClientHello({kProtocolVersion, "hutch", given}, secret, "agent", &refusal))
        << given;
    EXPECT_EQ(refusal.code, ErrorCode::kUnauthenticated);
    EXPECT_EQ(refusal.message.find(secret), std::string::npos) << "the refusal shows the secret";
  }
  // An agent given no secret (a sandbox made before secrets) asks for none.
  EXPECT_TRUE(AcceptClientHello({kProtocolVersion, "hutch", ""}, "", "agent", &refusal));
  EXPECT_TRUE(AcceptClientHello({kProtocolVersion, "hutch", secret}, "", "agent", &refusal));
  // The version is checked first, and says so.
  EXPECT_FALSE(AcceptClientHello({99, "future", secret}, secret, "agent", &refusal));
  EXPECT_EQ(refusal.code, ErrorCode::kVersionMismatch);
  EXPECT_NE(refusal.message.find("future speaks 99"), std::string::npos) << refusal.message;
}

TEST(ProtocolTest, AgentConfigRoundTrips) {
  AgentConfig in;
  in.session_id = "ses_x";
  in.hostname = "box";
  in.env = {{"K", "V"}};
  in.fd_count = 5;
  in.dev_fd_index = 4;
  in.user_namespace = true;
  in.lower_fd_indexes = {0};
  in.layer_fd_index = 1;
  in.tmpfs_layer_bytes = 1 << 20;
  in.tmpfs_layer_inodes = 64;
  in.binds = {{2, "/usr"}, {3, "/lib64"}};
  in.capabilities = 0x3fc;
  in.seccomp_filter = std::string(16, '\x15');
  in.secret = std::string(64, 'e');
  in.resolv_conf = "nameserver 192.0.2.53\n";
  in.attach_settings = true;
  in.attach_uid = 1000;
  in.attach_gid = 1001;
  in.attach_groups = {27, 100};
  in.attach_no_new_privs = true;
  AgentConfig out;
  std::string error;
  ASSERT_TRUE(DecodeAgentConfig(EncodeAgentConfig(in), &out, &error)) << error;
  EXPECT_TRUE(out.attach_settings);
  EXPECT_EQ(out.attach_uid, 1000u);
  EXPECT_EQ(out.attach_gid, 1001u);
  EXPECT_EQ(out.attach_groups, (std::vector<uint32_t>{27, 100}));
  EXPECT_TRUE(out.attach_no_new_privs);
  EXPECT_EQ(out.session_id, in.session_id);
  EXPECT_EQ(out.hostname, in.hostname);
  EXPECT_EQ(out.env, in.env);
  EXPECT_EQ(out.fd_count, 5u);
  EXPECT_EQ(out.dev_fd_index, 4u);
  EXPECT_TRUE(out.user_namespace);
  EXPECT_EQ(out.layer_fd_index, 1);
  EXPECT_EQ(out.tmpfs_layer_bytes, 1 << 20);
  EXPECT_EQ(out.tmpfs_layer_inodes, 64);
  ASSERT_EQ(out.binds.size(), 2u);
  EXPECT_EQ(out.binds[1].fd_index, 3u);
  EXPECT_EQ(out.binds[1].target, "/lib64");
  EXPECT_EQ(out.capabilities, 0x3fcu);
  EXPECT_EQ(out.seccomp_filter, in.seccomp_filter);
  EXPECT_EQ(out.resolv_conf, in.resolv_conf);
  EXPECT_EQ(out.secret, in.secret);
}

TEST(ProtocolTest, AgentConfigWithAnFdIndexOutOfRangeIsRejected) {
  AgentConfig in;
  in.fd_count = 2;
  in.lower_fd_indexes = {0};
  in.binds = {{2, "/usr"}};
  AgentConfig out;
  std::string error;
  EXPECT_FALSE(DecodeAgentConfig(EncodeAgentConfig(in), &out, &error));
  EXPECT_NE(error.find("fd index"), std::string::npos) << error;
  in.binds.clear();
  in.layer_fd_index = 5;
  EXPECT_FALSE(DecodeAgentConfig(EncodeAgentConfig(in), &out, &error));
  in.layer_fd_index = -1;
  EXPECT_TRUE(DecodeAgentConfig(EncodeAgentConfig(in), &out, &error)) << error;
}

TEST(ProtocolTest, AgentConfigWithWrongMagicIsRejected) {
  AgentConfig out;
  std::string error;
  EXPECT_FALSE(DecodeAgentConfig("garbage!", &out, &error));
  EXPECT_NE(error.find("magic"), std::string::npos);
}

// Every proper prefix of a valid payload is truncated and must fail cleanly; so must the
// payload with a byte appended.
TEST(ProtocolTest, TruncatedOrExtendedPayloadsAreRejected) {
  std::string req = EncodeExecRequest(SampleRequest());
  std::string res = EncodeExecResult(SampleResult());
  std::string error;
  for (size_t n = 0; n < req.size(); ++n) {
    core::ExecRequest out;
    EXPECT_FALSE(DecodeExecRequest(req.substr(0, n), &out, &error)) << n;
  }
  for (size_t n = 0; n < res.size(); ++n) {
    core::ExecResult out;
    EXPECT_FALSE(DecodeExecResult(res.substr(0, n), &out, &error)) << n;
  }
  core::ExecRequest out;
  EXPECT_FALSE(DecodeExecRequest(req + "x", &out, &error));
  EXPECT_NE(error.find("trailing"), std::string::npos) << error;
}

TEST(ProtocolTest, ExecRequestSemanticChecks) {
  std::string error;
  core::ExecRequest out;
  core::ExecRequest r = SampleRequest();
  r.argv.clear();
  EXPECT_FALSE(DecodeExecRequest(EncodeExecRequest(r), &out, &error));
  r = SampleRequest();
  r.argv[0] = std::string("a\0b", 3);
  EXPECT_FALSE(DecodeExecRequest(EncodeExecRequest(r), &out, &error));
  r = SampleRequest();
  r.env["A=B"] = "x";
  EXPECT_FALSE(DecodeExecRequest(EncodeExecRequest(r), &out, &error));
  r = SampleRequest();
  r.timeout_ms = -5;
  EXPECT_FALSE(DecodeExecRequest(EncodeExecRequest(r), &out, &error));
}

// Random bytes and random corruptions of valid payloads: decoding may fail but never crash or
// allocate wildly (run under ASan to see the latter).
TEST(ProtocolTest, RandomInputNeverCrashesDecoders) {
  std::mt19937 rng(42);
  std::string valid = EncodeExecRequest(SampleRequest());
  std::string error;
  for (int i = 0; i < 20000; ++i) {
    std::string data;
    if (i % 2 == 0) {
      data.resize(rng() % 64);
      for (auto& c : data) c = static_cast<char>(rng());
    } else {
      data = valid;
      for (int k = 0; k < 3; ++k) data[rng() % data.size()] = static_cast<char>(rng());
    }
    core::ExecRequest req;
    core::ExecResult res;
    Hello hello;
    ErrorMessage err;
    AgentConfig cfg;
    (void)DecodeExecRequest(data, &req, &error);
    (void)DecodeExecResult(data, &res, &error);
    (void)DecodeHello(data, &hello, &error);
    (void)DecodeError(data, &err, &error);
    (void)DecodeAgentConfig(data, &cfg, &error);
  }
}

TEST(FrameParserTest, ParsesFramesFedByteByByte) {
  std::string stream = EncodeFrame(MessageType::kHello, 0, "abc") +
                       EncodeFrame(MessageType::kExecRequest, 7, "") +
                       EncodeFrame(static_cast<MessageType>(200), 0xfffffffe, "zz");
  FrameParser p;
  std::vector<Frame> frames;
  std::string error;
  for (char c : stream) {
    p.Append(std::string_view(&c, 1));
    Frame f;
    while (p.Next(&f, &error) == FrameParser::Result::kFrame) frames.push_back(f);
  }
  ASSERT_EQ(frames.size(), 3u);
  EXPECT_EQ(frames[0].type, MessageType::kHello);
  EXPECT_EQ(frames[0].payload, "abc");
  EXPECT_EQ(frames[1].stream_id, 7u);
  EXPECT_EQ(frames[1].payload, "");
  EXPECT_EQ(static_cast<int>(frames[2].type), 200);
  EXPECT_EQ(frames[2].stream_id, 0xfffffffeu);
  EXPECT_EQ(p.buffered(), 0u);
}

TEST(FrameParserTest, OversizedFrameIsAnErrorBeforeItsPayloadArrives) {
  FrameParser p(1024);
  WireWriter w;
  w.U32(1025);
  w.U8(1);
  w.U32(0);
  p.Append(w.data());
  Frame f;
  std::string error;
  EXPECT_EQ(p.Next(&f, &error), FrameParser::Result::kError);
  EXPECT_NE(error.find("exceeds"), std::string::npos);
}

TEST(FrameParserTest, TruncatedFrameWantsTheRest) {
  std::string frame = EncodeFrame(MessageType::kExecResult, 1, "0123456789");
  FrameParser p;
  p.Append(frame.substr(0, 12));
  Frame f;
  std::string error;
  EXPECT_EQ(p.Next(&f, &error), FrameParser::Result::kNeedMore);
  EXPECT_EQ(p.BytesWanted(), frame.size() - 12);
}

class FrameIoTest : public ::testing::Test {
 protected:
  void SetUp() override { ASSERT_EQ(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, fds_), 0); }
  void TearDown() override {
    for (int fd : fds_)
      if (fd >= 0) close(fd);
  }
  int fds_[2] = {-1, -1};
};

TEST_F(FrameIoTest, WritesAndReadsFrames) {
  std::string error;
  std::string big(1 << 20, 'b');
  // A 1 MiB frame does not fit the socket buffer: write from a thread, read here.
  std::thread writer([&] {
    std::string e;
    EXPECT_EQ(WriteFrame(fds_[0], MessageType::kExecResult, 3, big, kNoDeadline, &e), IoStatus::kOk)
        << e;
  });
  FrameParser parser;
  Frame f;
  ASSERT_EQ(ReadFrame(fds_[1], &parser, &f, MonotonicMs() + 10000, &error), IoStatus::kOk) << error;
  writer.join();
  EXPECT_EQ(f.stream_id, 3u);
  EXPECT_EQ(f.payload, big);
}

TEST_F(FrameIoTest, ReportsCleanCloseTruncationAndTimeout) {
  std::string error;
  FrameParser parser;
  Frame f;
  EXPECT_EQ(ReadFrame(fds_[1], &parser, &f, MonotonicMs() + 20, &error), IoStatus::kTimeout);

  std::string frame = EncodeFrame(MessageType::kHello, 0, "abc");
  ASSERT_EQ(write(fds_[0], frame.data(), 5), 5);
  close(fds_[0]);
  fds_[0] = -1;
  EXPECT_EQ(ReadFrame(fds_[1], &parser, &f, kNoDeadline, &error), IoStatus::kError);

  int more[2];
  ASSERT_EQ(socketpair(AF_UNIX, SOCK_STREAM, 0, more), 0);
  close(more[0]);
  FrameParser p2;
  EXPECT_EQ(ReadFrame(more[1], &p2, &f, kNoDeadline, &error), IoStatus::kClosed);
  EXPECT_EQ(WriteAll(more[1], "x", kNoDeadline, &error), IoStatus::kError);  // EPIPE, no signal
  close(more[1]);
}

}  // namespace
}  // namespace hutch::agent
