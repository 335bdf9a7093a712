#include "api/port_access.h"

#include <gtest/gtest.h>

namespace hutch::api {
namespace {

constexpr std::string_view kKey = "0123456789abcdef0123456789abcdef";

TEST(PortAccessTest, AcceptsItsOwnSignatureOnlyForThatSessionPortAndTime) {
  std::string sig = SignPortAccess(kKey, "ses_a", 8888, 1000);
  EXPECT_TRUE(CheckPortAccess(kKey, "ses_a", 8888, "1000", sig, 999).ok());
  EXPECT_EQ(CheckPortAccess(kKey, "ses_a", 8888, "1000", sig, 1000).code(), Code::kUnauthenticated);
  EXPECT_EQ(CheckPortAccess(kKey, "ses_b", 8888, "1000", sig, 999).code(), Code::kUnauthenticated);
  EXPECT_EQ(CheckPortAccess(kKey, "ses_a", 8889, "1000", sig, 999).code(), Code::kUnauthenticated);
  // A later expiry needs its own signature.
  EXPECT_EQ(CheckPortAccess(kKey, "ses_a", 8888, "2000", sig, 999).code(), Code::kUnauthenticated);
  EXPECT_EQ(
      CheckPortAccess("another key, just as long as it..", "ses_a", 8888, "1000", sig, 999).code(),
      Code::kUnauthenticated);
  EXPECT_EQ(CheckPortAccess(kKey, "ses_a", 8888, "10x0", sig, 999).code(), Code::kUnauthenticated);
  EXPECT_EQ(CheckPortAccess(kKey, "ses_a", 8888, "1000", "", 999).code(), Code::kUnauthenticated);
  EXPECT_EQ(CheckPortAccess("", "ses_a", 8888, "1000", sig, 999).code(), Code::kUnauthenticated);
}

TEST(PortAccessTest, StripsOnlyTheSignatureParameters) {
  EXPECT_EQ(StripAccessParams("/a/b"), "/a/b");
  EXPECT_EQ(StripAccessParams("/?hutch_exp=1&hutch_sig=ab"), "/");
  EXPECT_EQ(StripAccessParams("/x?a=1&hutch_sig=ab&b=2&hutch_exp=3"), "/x?a=1&b=2");
  EXPECT_EQ(StripAccessParams("/x?hutch_signature=1"), "/x?hutch_signature=1");
}

}  // namespace
}  // namespace hutch::api
