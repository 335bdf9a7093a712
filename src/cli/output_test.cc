#include "cli/output.h"

#include <gtest/gtest.h>

namespace hutch::cli {
namespace {

TEST(ParseMegabytes, AcceptsUnitsAndBareMegabytes) {
  EXPECT_EQ(*ParseMegabytes("512", "--memory"), 512);
  EXPECT_EQ(*ParseMegabytes("512M", "--memory"), 512);
  EXPECT_EQ(*ParseMegabytes("512m", "--memory"), 512);
  EXPECT_EQ(*ParseMegabytes("512Mi", "--memory"), 512);
  EXPECT_EQ(*ParseMegabytes("512MB", "--memory"), 512);
  EXPECT_EQ(*ParseMegabytes("2G", "--memory"), 2048);
  EXPECT_EQ(*ParseMegabytes("2GiB", "--memory"), 2048);
  EXPECT_EQ(*ParseMegabytes("1.5G", "--memory"), 1536);
  EXPECT_EQ(*ParseMegabytes("1T", "--disk"), 1024 * 1024);
  EXPECT_EQ(*ParseMegabytes("2048K", "--memory"), 2);
}

TEST(ParseMegabytes, RejectsMalformedAndPartialMegabytesNamingTheFlag) {
  for (const char* bad : {"", "M", "-5M", "5X", "5 M", "1.2.3G", "abc", "0", "0.3M", "100K"}) {
    auto r = ParseMegabytes(bad, "--memory");
    ASSERT_FALSE(r.ok()) << bad;
    EXPECT_EQ(r.status().code(), Code::kInvalidArgument);
    EXPECT_NE(r.status().message().find("--memory"), std::string::npos) << r.status().message();
  }
}

TEST(FormatBytes, BinaryUnitsWithOneDecimalForSmallValues) {
  EXPECT_EQ(FormatBytes(0), "0B");
  EXPECT_EQ(FormatBytes(900), "900B");
  EXPECT_EQ(FormatBytes(1024), "1K");
  EXPECT_EQ(FormatBytes(1536), "1.5K");
  EXPECT_EQ(FormatBytes(int64_t{68} << 20), "68M");
  EXPECT_EQ(FormatBytes((int64_t{12} << 30) / 10), "1.2G");
  EXPECT_EQ(FormatBytes(-5), "0B");
}

TEST(FormatMegabytes, UsesTheLargestUnitThatReadsWell) {
  EXPECT_EQ(FormatMegabytes(512), "512M");
  EXPECT_EQ(FormatMegabytes(1024), "1G");
  EXPECT_EQ(FormatMegabytes(2048), "2G");
  EXPECT_EQ(FormatMegabytes(1536), "1.5G");
  EXPECT_EQ(FormatMegabytes(1025), "1G");
  EXPECT_EQ(FormatMegabytes(1024 * 1024), "1T");
  EXPECT_EQ(FormatMegabytes(0), "0M");
}

TEST(ParseSeconds, AcceptsUnitsAndNamesTheFlagWhenWrong) {
  EXPECT_EQ(*ParseSeconds("90s", "--ttl"), 90);
  EXPECT_EQ(*ParseSeconds("15m", "--ttl"), 900);
  EXPECT_EQ(*ParseSeconds("2h", "--ttl"), 7200);
  EXPECT_EQ(*ParseSeconds("1d", "--ttl"), 86400);
  EXPECT_EQ(*ParseSeconds("30", "--ttl"), 30);
  auto r = ParseSeconds("15x", "--ttl");
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().message(), "--ttl: '15x' is not a duration such as 90s, 15m, 2h or 1d");
}

TEST(FormatAge, ShowsTheLargestWholeUnit) {
  EXPECT_EQ(FormatAge(-3), "0s");
  EXPECT_EQ(FormatAge(3), "3s");
  EXPECT_EQ(FormatAge(59), "59s");
  EXPECT_EQ(FormatAge(60), "1m");
  EXPECT_EQ(FormatAge(5 * 60 + 59), "5m");
  EXPECT_EQ(FormatAge(2 * 3600), "2h");
  EXPECT_EQ(FormatAge(3 * 86400 + 5), "3d");
  TimePoint t = FromUnixMillis(1'000'000);
  EXPECT_EQ(FormatAgeSince(t, t + std::chrono::seconds(125)), "2m");
}

TEST(FormatCpus, DropsTrailingZeros) {
  EXPECT_EQ(FormatCpus(1), "1");
  EXPECT_EQ(FormatCpus(0.5), "0.5");
  EXPECT_EQ(FormatCpus(2.25), "2.25");
}

TEST(ParseKeyValue, SplitsAtTheFirstEquals) {
  auto kv = ParseKeyValue("a=b=c", "--label");
  ASSERT_TRUE(kv.ok());
  EXPECT_EQ(kv->first, "a");
  EXPECT_EQ(kv->second, "b=c");
  EXPECT_EQ(ParseKeyValue("a=", "--label")->second, "");
  EXPECT_FALSE(ParseKeyValue("a", "--label").ok());
  EXPECT_FALSE(ParseKeyValue("=b", "--label").ok());
}

TEST(Table, PadsColumnsToTheWidestCellWithoutTrailingSpaces) {
  Table t({"ID", "NAME", "STATE"});
  t.AddRow({"ses_a", "dev", "running"});
  t.AddRow({"ses_bbbbbb", "-", ""});
  EXPECT_EQ(t.ToString(),
            "ID           NAME   STATE\n"
            "ses_a        dev    running\n"
            "ses_bbbbbb   -\n");
}

TEST(Table, CountsUtf8CodePointsNotBytes) {
  Table t({"A", "B"});
  t.AddRow({"éé", "x"});
  t.AddRow({"abc", "y"});
  EXPECT_EQ(t.ToString(),
            "A     B\n"
            "éé    x\n"
            "abc   y\n");
}

TEST(Table, PrintsTheHeaderAloneWhenEmpty) {
  Table t({"FROM", "TO"});
  EXPECT_EQ(t.ToString(), "FROM   TO\n");
}

TEST(PrintKeyValues, AlignsValues) {
  std::ostringstream out;
  PrintKeyValues(out, {{"id", "ses_a"}, {"expires", "soon"}});
  EXPECT_EQ(out.str(),
            "id:      ses_a\n"
            "expires: soon\n");
}

TEST(PrettyJson, IndentsByTwoSpaces) {
  json::value v = json::parse(R"({"a":1,"b":[true,null,"x\n"],"c":{},"d":[],"e":{"f":2.5}})");
  EXPECT_EQ(PrettyJson(v),
            "{\n"
            "  \"a\": 1,\n"
            "  \"b\": [\n"
            "    true,\n"
            "    null,\n"
            "    \"x\\n\"\n"
            "  ],\n"
            "  \"c\": {},\n"
            "  \"d\": [],\n"
            "  \"e\": {\n"
            "    \"f\": 2.5\n"
            "  }\n"
            "}\n");
  EXPECT_EQ(PrettyJson(json::value(1.0)), "1\n");
  EXPECT_EQ(PrettyJson(json::value(0.5)), "0.5\n");
}

TEST(FormatDuration, IsExactInTheLargestUnitThatDivides) {
  EXPECT_EQ(FormatDuration(0), "0s");
  EXPECT_EQ(FormatDuration(90), "90s");
  EXPECT_EQ(FormatDuration(5400), "90m");
  EXPECT_EQ(FormatDuration(8 * 3600), "8h");
  EXPECT_EQ(FormatDuration(30 * 86400), "30d");
}

TEST(FormatRelative, SaysAgoOrInAndRoundsToTheSecond) {
  TimePoint now = Now();
  EXPECT_EQ(FormatRelative(now - std::chrono::minutes(5), now), "5m ago");
  EXPECT_EQ(FormatRelative(now + std::chrono::hours(24) - std::chrono::milliseconds(300), now),
            "in 1d");
  EXPECT_EQ(FormatRelative(now, now), "0s ago");
}

TEST(JsonFields, ReadWhatIsThereAndGiveEmptyValuesOtherwise) {
  json::object o = json::parse(R"({"s":"x","n":3,"d":0.5,"b":true,"z":null,"o":{"k":1},
                                   "a":["p","q"],"t":"2026-11-22T09:00:00.000Z"})")
                       .as_object();
  EXPECT_EQ(JsonString(o, "s"), "x");
  EXPECT_EQ(JsonString(o, "n"), "3");
  EXPECT_EQ(JsonString(o, "d"), "0.5");
  EXPECT_EQ(JsonString(o, "b"), "true");
  EXPECT_EQ(JsonString(o, "z"), "");
  EXPECT_EQ(JsonString(o, "missing"), "");
  EXPECT_EQ(JsonObject(o, "o").size(), 1u);
  EXPECT_TRUE(JsonObject(o, "s").empty());
  EXPECT_EQ(JsonStringList(o, "a"), "p, q");
  EXPECT_EQ(JsonStringList(o, "s"), "");
  ASSERT_TRUE(JsonTime(o, "t"));
  EXPECT_EQ(FormatTime(*JsonTime(o, "t")), "2026-11-22T09:00:00.000Z");
  EXPECT_FALSE(JsonTime(o, "s"));
}

TEST(FormatQuantity, ShowsEachUnitAsPeopleWriteIt) {
  EXPECT_EQ(FormatQuantity(json::value(5), QuotaUnit::kCount), "5");
  EXPECT_EQ(FormatQuantity(json::value(2.5), QuotaUnit::kCpus), "2.5");
  EXPECT_EQ(FormatQuantity(json::value(4096), QuotaUnit::kMegabytes), "4G");
  EXPECT_EQ(FormatQuantity(json::value(28800), QuotaUnit::kSeconds), "8h");
  EXPECT_EQ(FormatQuantity(json::value(nullptr), QuotaUnit::kCount), "-");
  EXPECT_EQ(FormatQuantity(json::value(nullptr), QuotaUnit::kCount, "no limit"), "no limit");
}

TEST(FormatQuotaSummary, ListsTheLimitsThatAreSet) {
  json::object q = json::parse(R"({"max_sessions":3,"max_cpus":null,"max_memory_mb":2048,
                                   "max_disk_mb":null,"max_ttl_seconds":3600})")
                       .as_object();
  EXPECT_EQ(FormatQuotaSummary(q), "sessions 3, memory 2G, ttl 1h");
  EXPECT_EQ(FormatQuotaSummary(json::object()), "");
}

}  // namespace
}  // namespace hutch::cli
