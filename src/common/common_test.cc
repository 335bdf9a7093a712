#include <fcntl.h>

#include <gtest/gtest.h>

#include "common/ids.h"
#include "common/json.h"
#include "common/scope_guard.h"
#include "common/status.h"
#include "common/time.h"
#include "common/unique_fd.h"

namespace hutch {
namespace {

TEST(StatusTest, CodesMapToApiNamesAndHttpStatuses) {
  EXPECT_EQ(CodeName(Code::kNotFound), "not_found");
  EXPECT_EQ(HttpStatus(Code::kNotFound), 404);
  EXPECT_EQ(HttpStatus(Code::kInsufficientStorage), 507);
  EXPECT_EQ(CodeFromName("resource_exhausted"), Code::kResourceExhausted);
  EXPECT_EQ(CodeFromName("bogus"), Code::kInternal);
}

TEST(StatusTest, ErrnoErrorNamesContextAndErrno) {
  Status st = ErrnoError("mount overlay for ses_x", EBUSY);
  EXPECT_EQ(st.code(), Code::kInternal);
  EXPECT_NE(st.message().find("mount overlay for ses_x"), std::string::npos);
  EXPECT_NE(st.message().find("EBUSY"), std::string::npos);
  EXPECT_EQ(ErrnoError("x", ENOENT).code(), Code::kNotFound);
  EXPECT_EQ(ErrnoError("x", ENOSPC).code(), Code::kInsufficientStorage);
}

Result<int> Half(int n) {
  if (n % 2) return InvalidArgument("odd");
  return n / 2;
}

Result<int> Quarter(int n) {
  ASSIGN_OR_RETURN(int h, Half(n));
  return Half(h);
}

TEST(StatusTest, AssignOrReturnPropagates) {
  EXPECT_EQ(*Quarter(8), 2);
  EXPECT_EQ(Quarter(6).status().code(), Code::kInvalidArgument);
}

TEST(UniqueFdTest, ClosesOnDestructionAndReleaseHandsOver) {
  int raw;
  {
    UniqueFd fd(open("/dev/null", O_RDONLY | O_CLOEXEC));
    raw = fd.get();
    ASSERT_GE(raw, 0);
  }
  EXPECT_EQ(fcntl(raw, F_GETFD), -1);
  UniqueFd fd(open("/dev/null", O_RDONLY | O_CLOEXEC));
  int released = fd.Release();
  EXPECT_FALSE(fd.valid());
  EXPECT_GE(fcntl(released, F_GETFD), 0);
  close(released);
}

TEST(ScopeGuardTest, RunsUnlessCancelled) {
  int runs = 0;
  {
    ScopeGuard g([&] { ++runs; });
  }
  {
    ScopeGuard g([&] { ++runs; });
    g.Cancel();
  }
  EXPECT_EQ(runs, 1);
}

TEST(IdsTest, NewIdHasPrefixAndSixteenBase32Chars) {
  std::string id = NewId("ses");
  EXPECT_TRUE(IsId(id, "ses")) << id;
  EXPECT_EQ(id.size(), 20u);
  EXPECT_NE(NewId("ses"), id);
  EXPECT_FALSE(IsId("ses_ABCDEFGHIJKLMNOP", "ses"));
  EXPECT_FALSE(IsId("tok_abcdefghijklmnop", "ses"));
  EXPECT_FALSE(IsId("ses_abc", "ses"));
}

TEST(TimeTest, FormatAndParseRoundTrip) {
  TimePoint t = FromUnixMillis(1795000000123);
  std::string s = FormatTime(t);
  EXPECT_EQ(s.back(), 'Z');
  EXPECT_EQ(ParseTime(s), t);
  EXPECT_EQ(ParseTime("2026-11-22T01:00:00+01:00"), ParseTime("2026-11-22T00:00:00Z"));
  EXPECT_FALSE(ParseTime("2026-11-22"));
  EXPECT_FALSE(ParseTime("2026-13-22T00:00:00Z"));
  EXPECT_FALSE(ParseTime("2026-11-22T00:00:00Zjunk"));
}

TEST(TimeTest, ParsesDurations) {
  EXPECT_EQ(ParseDurationSeconds("90s"), 90);
  EXPECT_EQ(ParseDurationSeconds("15m"), 900);
  EXPECT_EQ(ParseDurationSeconds("2h"), 7200);
  EXPECT_EQ(ParseDurationSeconds("45"), 45);
  EXPECT_FALSE(ParseDurationSeconds("m"));
  EXPECT_FALSE(ParseDurationSeconds("-5s"));
  EXPECT_FALSE(ParseDurationSeconds("5x"));
}

TEST(JsonTest, FieldReaderNamesTheFieldOnTypeErrors) {
  auto obj = ParseJsonObject(R"({"a": "x", "n": 5, "m": {"k": 1}})");
  ASSERT_TRUE(obj.ok());
  FieldReader r(*obj, "top");
  std::optional<int64_t> n;
  Status st = r.Int("a", &n, 0, 10);
  EXPECT_EQ(st.code(), Code::kInvalidArgument);
  EXPECT_NE(st.message().find("top.a"), std::string::npos);
  EXPECT_TRUE(r.Int("n", &n, 0, 10).ok());
  EXPECT_EQ(n, 5);
  EXPECT_FALSE(r.Int("n", &n, 6, 10).ok());
  std::optional<std::map<std::string, std::string>> m;
  st = r.StringMap("m", &m);
  EXPECT_NE(st.message().find("top.m.k"), std::string::npos);
  EXPECT_NE(r.RejectUnknown({"a", "n"}).message().find("top.m"), std::string::npos);
}

TEST(JsonTest, ParseJsonObjectRejectsGarbageAndNonObjects) {
  EXPECT_EQ(ParseJsonObject("{nope").status().code(), Code::kInvalidArgument);
  EXPECT_EQ(ParseJsonObject("[1,2]").status().code(), Code::kInvalidArgument);
  EXPECT_EQ(ParseJsonObject("").status().code(), Code::kInvalidArgument);
  std::string deep(200, '[');
  EXPECT_EQ(ParseJsonObject(deep).status().code(), Code::kInvalidArgument);
}

}  // namespace
}  // namespace hutch
