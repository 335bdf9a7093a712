#include "core/glob.h"

#include <gtest/gtest.h>

#include <string>

#include "core/session.h"

namespace hutch::core {
namespace {

TEST(GlobMatchTest, StarMatchesAnyRunAlsoNone) {
  EXPECT_TRUE(GlobMatch("web-*", "web-1"));
  EXPECT_TRUE(GlobMatch("web-*", "web-"));
  EXPECT_TRUE(GlobMatch("*", ""));
  EXPECT_TRUE(GlobMatch("*-1", "db-1"));
  EXPECT_TRUE(GlobMatch("w*b*1", "web-shop-1"));
  EXPECT_FALSE(GlobMatch("web-*", "db-1"));
  EXPECT_FALSE(GlobMatch("web-*", "my-web-1"));  // anchored at both ends
  EXPECT_FALSE(GlobMatch("*-1", "web-10"));
}

TEST(GlobMatchTest, QuestionMarkMatchesExactlyOneCharacter) {
  EXPECT_TRUE(GlobMatch("web-?", "web-1"));
  EXPECT_FALSE(GlobMatch("web-?", "web-10"));
  EXPECT_FALSE(GlobMatch("web-?", "web-"));
  // One code point, not one byte: "é" is two bytes in UTF-8.
  EXPECT_TRUE(GlobMatch("caf?", "café"));
  EXPECT_FALSE(GlobMatch("caf??", "café"));
}

TEST(GlobMatchTest, AsciiLettersIgnoreCase) {
  EXPECT_TRUE(GlobMatch("WEB-*", "web-1"));
  EXPECT_TRUE(GlobMatch("web-*", "Web-1"));
  // Only ASCII folds (as SQLite's LIKE does): É and é differ.
  EXPECT_FALSE(GlobMatch("É", "é"));
}

TEST(GlobMatchTest, BackslashMakesTheNextCharacterLiteral) {
  EXPECT_TRUE(GlobMatch(R"(a\*)", "a*"));
  EXPECT_FALSE(GlobMatch(R"(a\*)", "ab"));
  EXPECT_TRUE(GlobMatch(R"(a\?)", "a?"));
  EXPECT_FALSE(GlobMatch(R"(a\?)", "ab"));
  EXPECT_TRUE(GlobMatch(R"(a\\)", R"(a\)"));
  EXPECT_TRUE(GlobMatch(R"(a\)", R"(a\)"));  // a trailing backslash is itself
  EXPECT_TRUE(GlobMatch("[x]", "[x]"));      // no classes: '[' is literal
  EXPECT_FALSE(GlobMatch("[x]", "x"));
}

TEST(GlobMatchTest, ManyStarsStayFast) {
  // A backtracking matcher without the single-restart rule takes exponential time here.
  std::string text(2000, 'a');
  std::string pattern;
  for (int i = 0; i < 50; ++i) pattern += "*a";
  pattern += "*b";
  EXPECT_FALSE(GlobMatch(pattern, text));
}

TEST(GlobContainsTest, MatchesAnyPartOfTheText) {
  EXPECT_TRUE(GlobContains("demo", "the Demo of web"));
  EXPECT_TRUE(GlobContains("web-*", "the web-shop demo"));
  EXPECT_TRUE(GlobContains("w?b", "a web"));
  EXPECT_FALSE(GlobContains("shop", "the web demo"));
  EXPECT_TRUE(GlobContains("", ""));
  EXPECT_TRUE(GlobContains(R"(100\%)", "100% done"));
}

TEST(SessionMatchesQueryTest, NameWholeOrTitlePart) {
  EXPECT_TRUE(SessionMatchesQuery("web-*", "web-1", ""));
  EXPECT_TRUE(SessionMatchesQuery("web-*", "db-1", "backs the web-shop"));
  EXPECT_FALSE(SessionMatchesQuery("web", "web-1", "database"));  // names match whole
  EXPECT_TRUE(SessionMatchesQuery("data", "db-1", "Database"));
}

TEST(GlobToLikeTest, TranslatesWildcardsAndEscapesLikeMetacharacters) {
  EXPECT_EQ(GlobToLike("web-*"), "web-%");
  EXPECT_EQ(GlobToLike("web-?"), "web-_");
  EXPECT_EQ(GlobToLike("a**b"), "a%b");
  EXPECT_EQ(GlobToLike("100%_x"), R"(100\%\_x)");
  EXPECT_EQ(GlobToLike(R"(a\*b)"), "a*b");
  EXPECT_EQ(GlobToLike(R"(a\\b)"), R"(a\\b)");
  EXPECT_EQ(GlobToLike(R"(a\)"), R"(a\\)");
  EXPECT_EQ(GlobToLike("WeB"), "web");
  EXPECT_EQ(GlobToLike("É"), "É");
}

TEST(GlobToLikeTest, ContainsWrapsInPercentOnce) {
  EXPECT_EQ(GlobToLike("demo", true), "%demo%");
  EXPECT_EQ(GlobToLike("web-*", true), "%web-%");
  EXPECT_EQ(GlobToLike("*x*", true), "%x%");
  EXPECT_EQ(GlobToLike(R"(\*)", true), "%*%");
  EXPECT_EQ(GlobToLike("", true), "%");
}

TEST(CheckTitleTest, AcceptsOneLineOfTextUpTo200Characters) {
  EXPECT_EQ(CheckTitle(""), "");
  EXPECT_EQ(CheckTitle("Web shop: staging (Dana's)"), "");
  EXPECT_EQ(CheckTitle(std::string(200, 'x')), "");
  // 200 characters of two bytes each: the limit counts characters.
  std::string accents;
  for (int i = 0; i < 200; ++i) accents += "é";
  EXPECT_EQ(CheckTitle(accents), "");
  EXPECT_EQ(CheckTitle("数据库 🚀"), "");
}

TEST(CheckTitleTest, RefusesLongTitlesControlCharactersAndBadUtf8) {
  EXPECT_NE(CheckTitle(std::string(201, 'x')).find("longer than 200"), std::string::npos);
  EXPECT_NE(CheckTitle("a\nb").find("control"), std::string::npos);
  EXPECT_NE(CheckTitle("a\tb").find("control"), std::string::npos);
  EXPECT_NE(CheckTitle(std::string("a\0b", 3)).find("control"), std::string::npos);
  EXPECT_NE(CheckTitle("a\x7f").find("control"), std::string::npos);
  EXPECT_NE(CheckTitle("a\xc2\x85").find("U+0085"), std::string::npos);  // C1 NEL
  EXPECT_NE(CheckTitle("\xff").find("UTF-8"), std::string::npos);
  EXPECT_NE(CheckTitle("\xc3").find("UTF-8"), std::string::npos);          // cut short
  EXPECT_NE(CheckTitle("\xc0\xaf").find("UTF-8"), std::string::npos);      // overlong '/'
  EXPECT_NE(CheckTitle("\xed\xa0\x80").find("UTF-8"), std::string::npos);  // a surrogate
}

}  // namespace
}  // namespace hutch::core
