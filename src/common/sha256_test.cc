#include "common/sha256.h"

#include <gtest/gtest.h>

#include <string>

namespace hutch {
namespace {

// FIPS 180-2's examples.
constexpr const char* kEmpty = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";
constexpr const char* kAbc = "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad";
constexpr const char* kMillionA =
    "cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0";

TEST(Sha256Test, OneShotMatchesTheStandardsExamples) {
  EXPECT_EQ(Sha256Hex(""), kEmpty);
  EXPECT_EQ(Sha256Hex("abc"), kAbc);
  EXPECT_EQ(Sha256Hex(std::string(1000000, 'a')), kMillionA);
}

TEST(Sha256Test, PiecesHashLikeTheWhole) {
  Sha256 sha;
  for (int i = 0; i < 1000; ++i) sha.Update(std::string(1000, 'a'));
  EXPECT_EQ(sha.HexDigest(), kMillionA);
}

TEST(Sha256Test, StartsOverAfterTheDigest) {
  Sha256 sha;
  sha.Update("a");
  sha.Update("bc");
  EXPECT_EQ(sha.HexDigest(), kAbc);
  EXPECT_EQ(sha.HexDigest(), kEmpty);
  sha.Update("abc");
  EXPECT_EQ(sha.HexDigest(), kAbc);
}

TEST(Sha256Test, AMovedHashGoesOn) {
  Sha256 a;
  a.Update("ab");
  Sha256 b = std::move(a);
  b.Update("c");
  EXPECT_EQ(b.HexDigest(), kAbc);
}

}  // namespace
}  // namespace hutch
