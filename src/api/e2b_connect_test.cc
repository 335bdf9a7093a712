// The Connect framing and the E2B id and token rules that api/e2b_*.cc build on.
#include "api/e2b_connect.h"

#include <gtest/gtest.h>

#include "api/e2b_common.h"
#include "e2b/proto/process.pb.h"

namespace hutch::api::e2b {
namespace {

ApiRequest WithType(std::string type) {
  ApiRequest r;
  r.headers["content-type"] = std::move(type);
  return r;
}

TEST(E2bConnectTest, CodecFollowsTheContentTypeAndTheMethodsKind) {
  auto json = CodecOf(WithType("application/json; charset=utf-8"), false);
  ASSERT_TRUE(json.ok());
  EXPECT_FALSE(json->binary);
  auto proto = CodecOf(WithType("application/connect+proto"), true);
  ASSERT_TRUE(proto.ok());
  EXPECT_TRUE(proto->binary && proto->streaming);
  EXPECT_FALSE(CodecOf(WithType("application/connect+json"), false).ok());
  EXPECT_FALSE(CodecOf(WithType("application/json"), true).ok());
  EXPECT_FALSE(CodecOf(WithType("text/plain"), false).ok());
  ApiRequest gz = WithType("application/json");
  gz.headers["content-encoding"] = "gzip";
  EXPECT_FALSE(CodecOf(gz, false).ok());
}

TEST(E2bConnectTest, StreamMessagesRoundTripThroughEnvelopes) {
  process::StartResponse r;
  r.mutable_event()->mutable_data()->set_stdout(std::string("a\0b", 3));
  std::string wire = StreamMessage(ConnectCodec{true, true}, r) + StreamEnd(nullptr);
  auto envelopes = SplitEnvelopes(wire);
  ASSERT_TRUE(envelopes.ok());
  ASSERT_EQ(envelopes->size(), 2u);
  EXPECT_EQ((*envelopes)[0].flags, 0);
  process::StartResponse back;
  ASSERT_TRUE(back.ParseFromString((*envelopes)[0].payload));
  EXPECT_EQ(back.event().data().stdout(), std::string("a\0b", 3));
  EXPECT_EQ((*envelopes)[1].flags, 2);
  EXPECT_EQ((*envelopes)[1].payload, "{}");

  RpcError e{"not_found", "gone"};
  auto end = SplitEnvelopes(StreamEnd(&e));
  ASSERT_TRUE(end.ok());
  EXPECT_EQ((*end)[0].payload, R"({"error":{"code":"not_found","message":"gone"}})");
}

TEST(E2bConnectTest, TruncatedAndCompressedEnvelopesAreRefused) {
  EXPECT_FALSE(SplitEnvelopes(std::string("\0\0\0", 3)).ok());
  EXPECT_FALSE(SplitEnvelopes(std::string("\0\0\0\0\x05"
                                          "abc",
                                          8))
                   .ok());
  EXPECT_FALSE(SplitEnvelopes(std::string("\x01\0\0\0\0", 5)).ok());
}

TEST(E2bConnectTest, RequestsDecodeInBothEncodings) {
  process::SendSignalRequest want;
  want.mutable_process()->set_pid(42);
  want.set_signal(process::SIGNAL_SIGKILL);
  process::SendSignalRequest got;
  ASSERT_TRUE(DecodeRequest(ConnectCodec{true, false}, want.SerializeAsString(), &got).ok());
  EXPECT_EQ(got.process().pid(), 42u);
  got.Clear();
  // Proto3 JSON: lowerCamel names, enums by name, unknown fields ignored.
  ASSERT_TRUE(DecodeRequest(ConnectCodec{false, false},
                            R"({"process":{"pid":42},"signal":"SIGNAL_SIGKILL","extra":1})", &got)
                  .ok());
  EXPECT_EQ(got.signal(), process::SIGNAL_SIGKILL);
  EXPECT_FALSE(DecodeRequest(ConnectCodec{false, false}, R"({"process":{"pid":"x"}})", &got).ok());
}

TEST(E2bConnectTest, UnaryErrorsCarryConnectsHttpStatus) {
  ApiResponse r = UnaryError(ToRpcError(NotFound("no such process")));
  EXPECT_EQ(r.status, 404);
  EXPECT_EQ(r.body, R"({"code":"not_found","message":"no such process"})");
  EXPECT_EQ(UnaryError(RpcError{"already_exists", ""}).status, 409);
  EXPECT_EQ(UnaryError(ToRpcError(Conflict("paused"))).status, 400);  // failed_precondition
  EXPECT_EQ(UnaryError(ToRpcError(Unavailable("gone"))).status, 503);
}

TEST(E2bCommonTest, SandboxIdsAreSessionIdsWithoutThePrefixAndDnsSafe) {
  EXPECT_EQ(SandboxIdOf("ses_abcdefgh234567ab"), "abcdefgh234567ab");
  EXPECT_EQ(SessionIdOf("abcdefgh234567ab"), "ses_abcdefgh234567ab");
  EXPECT_EQ(SessionIdOf("ses_abcdefgh234567ab"), "");  // '_' is no sandbox id's
  EXPECT_EQ(SessionIdOf("ABC"), "");
  EXPECT_EQ(SessionIdOf(""), "");
}

TEST(E2bCommonTest, EnvdAccessTokensAreBoundToTheirSessionAndKey) {
  std::string t = EnvdAccessToken("key", "ses_a");
  EXPECT_TRUE(CheckEnvdAccessToken("key", "ses_a", t).ok());
  EXPECT_FALSE(CheckEnvdAccessToken("key", "ses_b", t).ok());
  EXPECT_FALSE(CheckEnvdAccessToken("other", "ses_a", t).ok());
  EXPECT_FALSE(CheckEnvdAccessToken("key", "ses_a", "").ok());
}

}  // namespace
}  // namespace hutch::api::e2b
