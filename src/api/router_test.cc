#include "api/router.h"

#include <gtest/gtest.h>

#include "api/http_types.h"
#include "api/server.h"

namespace hutch::api {
namespace {

ApiResponse Named(std::string name) {
  ApiResponse r;
  r.body = std::move(name);
  return r;
}

TEST(RouterTest, MatchesLiteralsAndCapturesParams) {
  Router router;
  router.Add("GET", "/v1/sessions", {}, [](const RouteContext&) { return Named("list"); });
  router.Add("GET", "/v1/sessions/{id}", {}, [](const RouteContext&) { return Named("get"); });
  router.Add("POST", "/v1/sessions/{id}/exec", {},
             [](const RouteContext&) { return Named("exec"); });

  auto m = router.Find("GET", "/v1/sessions/ses_abc");
  ASSERT_TRUE(m.route);
  EXPECT_EQ(m.route->pattern, "/v1/sessions/{id}");
  EXPECT_EQ(m.params.at("id"), "ses_abc");

  m = router.Find("POST", "/v1/sessions/lab-1/exec");
  ASSERT_TRUE(m.route);
  EXPECT_EQ(m.params.at("id"), "lab-1");

  EXPECT_TRUE(router.Find("GET", "/v1/sessions").route);
  EXPECT_FALSE(router.Find("GET", "/v1/sessions/").route);
  EXPECT_FALSE(router.Find("GET", "/v1/sessions/a/b").route);
  EXPECT_FALSE(router.Find("GET", "/v1/session").route);
}

TEST(RouterTest, ConnectionRoutesOnlySkipsTheOthers) {
  Router router;
  router.Add("POST", "/v1/sessions/{id}/ports/{port}/url", {},
             [](const RouteContext&) { return Named("url"); });
  RouteSpec proxy;
  proxy.takes_connection = true;
  router.Add("POST", "/v1/sessions/{id}/ports/{port}/{path...}", proxy,
             [](const RouteContext&) { return Named("proxy"); });
  auto m = router.Find("POST", "/v1/sessions/s/ports/80/url");
  ASSERT_TRUE(m.route);
  EXPECT_EQ(m.route->pattern, "/v1/sessions/{id}/ports/{port}/url");
  m = router.Find("POST", "/v1/sessions/s/ports/80/url", true);
  ASSERT_TRUE(m.route);
  EXPECT_EQ(m.route->pattern, "/v1/sessions/{id}/ports/{port}/{path...}");
  EXPECT_FALSE(router.Find("POST", "/v1/sessions/s", true).route);
}

TEST(RouterTest, RestCaptureTakesTheRemainingPathEvenEmpty) {
  Router router;
  router.Add("GET", "/v1/sessions/{id}/ports/{port}/{path...}", {},
             [](const RouteContext&) { return Named("proxy"); });
  auto m = router.Find("GET", "/v1/sessions/s1/ports/80/a/b/c.txt");
  ASSERT_TRUE(m.route);
  EXPECT_EQ(m.params.at("id"), "s1");
  EXPECT_EQ(m.params.at("port"), "80");
  EXPECT_EQ(m.params.at("path"), "a/b/c.txt");
  m = router.Find("GET", "/v1/sessions/s1/ports/80/");
  ASSERT_TRUE(m.route);
  EXPECT_EQ(m.params.at("path"), "");
  EXPECT_FALSE(router.Find("GET", "/v1/sessions/s1/ports/80").route);
  EXPECT_FALSE(router.Find("GET", "/v1/sessions/s1/other/80/x").route);
}

TEST(HostRouteTest, PortDashSessionUnderTheBaseDomainOnly) {
  EXPECT_EQ(HostRoutePrefix("8888-ses_abc.apps.example.com", "apps.example.com"),
            "/v1/sessions/ses_abc/ports/8888");
  EXPECT_EQ(HostRoutePrefix("80-my-lab.Apps.Example.com:7070", "apps.example.com"),
            "/v1/sessions/my-lab/ports/80");
  EXPECT_EQ(HostRoutePrefix("apps.example.com", "apps.example.com"), "");
  EXPECT_EQ(HostRoutePrefix("8888-ses_abc.evil.com", "apps.example.com"), "");
  EXPECT_EQ(HostRoutePrefix("8888-ses_abc.xapps.example.com", "apps.example.com"), "");
  EXPECT_EQ(HostRoutePrefix("a.8888-ses_abc.apps.example.com", "apps.example.com"), "");
  EXPECT_EQ(HostRoutePrefix("x8-ses_abc.apps.example.com", "apps.example.com"), "");
  EXPECT_EQ(HostRoutePrefix("8888-.apps.example.com", "apps.example.com"), "");
  EXPECT_EQ(HostRoutePrefix("", "apps.example.com"), "");
  // E2B sandbox ids (16 base32 characters): envd's port 49983 is hutch's envd API, any other
  // port the session's.
  EXPECT_EQ(HostRoutePrefix("49983-abcdefgh234567ab.apps.example.com", "apps.example.com"),
            "/e2b/envd/abcdefgh234567ab");
  EXPECT_EQ(HostRoutePrefix("3000-abcdefgh234567ab.apps.example.com", "apps.example.com"),
            "/v1/sessions/ses_abcdefgh234567ab/ports/3000");
  EXPECT_EQ(HostRoutePrefix("49983-my-lab.apps.example.com", "apps.example.com"),
            "/v1/sessions/my-lab/ports/49983");
}

TEST(RouterTest, WrongMethodReportsAllowedMethods) {
  Router router;
  router.Add("GET", "/v1/sessions/{id}", {}, [](const RouteContext&) { return Named("get"); });
  router.Add("DELETE", "/v1/sessions/{id}", {}, [](const RouteContext&) { return Named("del"); });
  auto m = router.Find("PUT", "/v1/sessions/x");
  EXPECT_FALSE(m.route);
  EXPECT_EQ(m.allow, "GET, DELETE");
  EXPECT_TRUE(router.Find("PUT", "/nowhere").allow.empty());
}

TEST(HttpTypesTest, ErrorResponseHasDesignShape) {
  ApiResponse r = ApiResponse::Error(NotFound("session 'x' not found"));
  EXPECT_EQ(r.status, 404);
  auto v = json::parse(r.body);
  EXPECT_EQ(v.at("error").at("code").as_string(), "not_found");
  EXPECT_EQ(v.at("error").at("message").as_string(), "session 'x' not found");
}

TEST(HttpTypesTest, QueryParsing) {
  ApiRequest req;
  req.query["purge"] = {"true"};
  req.query["limit"] = {"abc"};
  req.query["n"] = {"7"};
  EXPECT_TRUE(*QueryBool(req, "purge", false));
  EXPECT_FALSE(*QueryBool(req, "absent", false));
  EXPECT_FALSE(QueryInt(req, "limit", 1, 1, 10).ok());
  EXPECT_EQ(*QueryInt(req, "n", 1, 1, 10), 7);
  EXPECT_FALSE(QueryInt(req, "n", 1, 1, 5).ok());
}

}  // namespace
}  // namespace hutch::api
