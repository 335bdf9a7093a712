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

// The cookie's value: what follows "hutch_port_access=" up to the first ';'.
std::string CookieValue(const std::string& set_cookie) {
  size_t eq = set_cookie.find('=');
  return set_cookie.substr(eq + 1, set_cookie.find(';') - eq - 1);
}

TEST(PortAccessTest, SetCookieIsHttpOnlyLaxScopedAndLastsUntilTheExpiry) {
  std::string c =
      PortAccessSetCookie(kKey, "ses_a", 8000, 1000, 940, "/v1/sessions/web/ports/8000/");
  EXPECT_EQ(c.rfind("hutch_port_access=ses_a.8000.1000.", 0), 0u) << c;
  EXPECT_NE(c.find("; Path=/v1/sessions/web/ports/8000/;"), std::string::npos) << c;
  EXPECT_NE(c.find("; Max-Age=60;"), std::string::npos) << c;
  EXPECT_NE(c.find("; HttpOnly"), std::string::npos) << c;
  EXPECT_NE(c.find("; SameSite=Lax"), std::string::npos) << c;
  EXPECT_EQ(c.find("Secure"), std::string::npos) << c;
  EXPECT_EQ(CookieValue(c), "ses_a.8000.1000." + SignPortAccess(kKey, "ses_a", 8000, 1000));
}

TEST(PortAccessTest, CookieOpensOnlyItsSessionAndPortUntilItExpires) {
  std::string value = CookieValue(PortAccessSetCookie(kKey, "ses_a", 8000, 1000, 900, "/"));
  std::string header = "hutch_port_access=" + value;
  EXPECT_TRUE(CheckPortAccessCookie(kKey, header, "ses_a", 8000, 999).ok());
  EXPECT_EQ(CheckPortAccessCookie(kKey, header, "ses_a", 8000, 1000).code(),
            Code::kUnauthenticated);
  EXPECT_EQ(CheckPortAccessCookie(kKey, header, "ses_a", 8001, 999).code(), Code::kUnauthenticated);
  EXPECT_EQ(CheckPortAccessCookie(kKey, header, "ses_b", 8000, 999).code(), Code::kUnauthenticated);
  EXPECT_EQ(
      CheckPortAccessCookie("another key, just as long as it..", header, "ses_a", 8000, 999).code(),
      Code::kUnauthenticated);
  EXPECT_EQ(CheckPortAccessCookie(kKey, "", "ses_a", 8000, 999).code(), Code::kUnauthenticated);
}

TEST(PortAccessTest, CookieWithATamperedPartIsRefused) {
  std::string sig = SignPortAccess(kKey, "ses_a", 8000, 1000);
  // A later expiry, or the port of another cookie, under the same signature.
  EXPECT_FALSE(
      CheckPortAccessCookie(kKey, "hutch_port_access=ses_a.8000.2000." + sig, "ses_a", 8000, 999)
          .ok());
  EXPECT_FALSE(
      CheckPortAccessCookie(kKey, "hutch_port_access=ses_a.8001.1000." + sig, "ses_a", 8001, 999)
          .ok());
  for (std::string bad : {"hutch_port_access=", "hutch_port_access=ses_a", "hutch_port_access=a.b",
                          "hutch_port_access=ses_a.8000.1000", "hutch_port_access=...."}) {
    EXPECT_EQ(CheckPortAccessCookie(kKey, bad, "ses_a", 8000, 999).code(), Code::kUnauthenticated)
        << bad;
  }
}

TEST(PortAccessTest, AnyOfSeveralCookiesMayOpenThePort) {
  std::string a = CookieValue(PortAccessSetCookie(kKey, "ses_a", 8000, 1000, 900, "/"));
  std::string b = CookieValue(PortAccessSetCookie(kKey, "ses_a", 9000, 1000, 900, "/"));
  std::string header =
      "theme=dark; hutch_port_access=" + a + ";hutch_port_access=\"" + b + "\"; x=1";
  EXPECT_TRUE(CheckPortAccessCookie(kKey, header, "ses_a", 8000, 999).ok());
  EXPECT_TRUE(CheckPortAccessCookie(kKey, header, "ses_a", 9000, 999).ok());
  EXPECT_FALSE(CheckPortAccessCookie(kKey, header, "ses_a", 7000, 999).ok());
}

TEST(PortAccessTest, StripsOnlyTheAccessCookies) {
  EXPECT_EQ(StripAccessCookie("hutch_port_access=x"), "");
  EXPECT_EQ(StripAccessCookie("a=1; hutch_port_access=x; b=2;hutch_port_access=y"), "a=1; b=2");
  EXPECT_EQ(StripAccessCookie("hutch_port_access_other=1; a=2"), "hutch_port_access_other=1; a=2");
  EXPECT_TRUE(HasAccessCookie("a=1; hutch_port_access=x"));
  EXPECT_FALSE(HasAccessCookie("a=1; hutch_port_accessx=x"));
  EXPECT_FALSE(HasAccessCookie(""));
}

// The console's cookie holds its user's credential: an app behind the proxy never gets it.
TEST(PortAccessTest, StripsTheConsoleCookieToo) {
  EXPECT_TRUE(HasAccessCookie("a=1; hutch_console=hutch_abc"));
  EXPECT_EQ(StripAccessCookie("a=1; hutch_console=hutch_abc; b=2"), "a=1; b=2");
  EXPECT_EQ(StripAccessCookie("hutch_console=x; hutch_port_access=y"), "");
}

TEST(PortAccessTest, CookieValueFindsTheFirstCookieOfAName) {
  EXPECT_EQ(api::CookieValue("a=1; hutch_console=tok; hutch_console=other", "hutch_console"),
            "tok");
  EXPECT_EQ(api::CookieValue("hutch_consolex=1", "hutch_console"), "");
  EXPECT_EQ(api::CookieValue("b=\"quoted\"", "b"), "quoted");
  EXPECT_EQ(api::CookieValue("", "a"), "");
}

}  // namespace
}  // namespace hutch::api
