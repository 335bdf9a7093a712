#include "controller/webhook_url.h"

#include <gtest/gtest.h>

namespace hutch::controller {
namespace {

TEST(WebhookUrlTest, ParsesHostPortAndTarget) {
  auto u = ParseWebhookUrl("https://Hooks.Example.com/hutch/in?x=1#frag");
  ASSERT_TRUE(u.ok()) << u.status().ToString();
  EXPECT_TRUE(u->tls);
  EXPECT_EQ(u->host, "hooks.example.com");
  EXPECT_EQ(u->port, "443");
  EXPECT_EQ(u->target, "/hutch/in?x=1");
  EXPECT_EQ(u->host_header, "hooks.example.com");
  EXPECT_FALSE(u->host_is_ip);

  u = ParseWebhookUrl("http://127.0.0.1:8080");
  ASSERT_TRUE(u.ok());
  EXPECT_FALSE(u->tls);
  EXPECT_EQ(u->port, "8080");
  EXPECT_EQ(u->target, "/");
  EXPECT_EQ(u->host_header, "127.0.0.1:8080");
  EXPECT_TRUE(u->host_is_ip);

  u = ParseWebhookUrl("HTTP://[::1]:9000?q");
  ASSERT_TRUE(u.ok());
  EXPECT_EQ(u->host, "::1");
  EXPECT_EQ(u->target, "/?q");
  EXPECT_EQ(u->host_header, "[::1]:9000");
  EXPECT_TRUE(u->host_is_ip);
}

TEST(WebhookUrlTest, RefusesWhatIsNotAPlainHttpUrl) {
  for (const char* bad :
       {"ftp://example.com/", "example.com/hook", "http://", "http:///x", "http://a b/",
        "http://user:pw@example.com/", "http://example.com:0/", "http://example.com:70000/",
        "http://example.com:/", "http://[::1/", "http://[zz::1]/", "http://::1/",
        "http://exa$mple.com/", "javascript:alert(1)"}) {
    auto u = ParseWebhookUrl(bad);
    EXPECT_EQ(u.status().code(), Code::kInvalidArgument) << bad;
  }
  EXPECT_FALSE(ParseWebhookUrl("http://x.com/" + std::string(3000, 'a')).ok());
}

TEST(WebhookUrlTest, LinkLocalAndMetadataAreAlwaysRefused) {
  for (const char* ip :
       {"169.254.169.254", "169.254.0.1", "fe80::1", "fd00:ec2::254", "100.100.100.200", "0.0.0.0",
        "::", "224.0.0.1", "255.255.255.255", "ff02::1", "::ffff:169.254.169.254"}) {
    for (bool allow_private : {false, true}) {
      Status st = CheckWebhookAddress(ip, allow_private);
      EXPECT_EQ(st.code(), Code::kPermissionDenied) << ip << " allow_private=" << allow_private;
      EXPECT_NE(st.message().find("never"), std::string::npos) << st.message();
    }
  }
}

TEST(WebhookUrlTest, PrivateAndLoopbackOnlyWhenAllowed) {
  for (const char* ip : {"127.0.0.1", "127.5.5.5", "10.1.2.3", "172.16.0.1", "172.31.255.255",
                         "192.168.1.1", "100.64.0.1", "::1", "fc00::1", "fd12:3456::1",
                         "::ffff:127.0.0.1", "::ffff:10.0.0.1", "64:ff9b::a00:1"}) {
    Status st = CheckWebhookAddress(ip, false);
    EXPECT_EQ(st.code(), Code::kPermissionDenied) << ip;
    EXPECT_NE(st.message().find("webhooks.allow_private"), std::string::npos) << st.message();
    EXPECT_TRUE(CheckWebhookAddress(ip, true).ok()) << ip;
  }
}

TEST(WebhookUrlTest, PublicAddressesPass) {
  for (const char* ip : {"93.184.216.34", "8.8.8.8", "172.32.0.1", "172.15.255.255",
                         "2606:2800:220:1:248:1893:25c8:1946", "::ffff:8.8.8.8"})
    EXPECT_TRUE(CheckWebhookAddress(ip, false).ok()) << ip;
  EXPECT_EQ(CheckWebhookAddress("example.com", false).code(), Code::kInvalidArgument);
}

TEST(WebhookUrlTest, CheckUrlRefusesLiteralsAndLocalhostBeforeResolving) {
  EXPECT_TRUE(CheckWebhookUrl("https://hooks.example.com/x", false).ok());
  for (const char* url : {"http://127.0.0.1:8080/", "http://localhost/", "http://a.localhost/",
                          "http://[::1]/", "http://10.0.0.5/"}) {
    auto u = CheckWebhookUrl(url, false);
    EXPECT_EQ(u.status().code(), Code::kInvalidArgument) << url;
    EXPECT_NE(u.status().message().find("allow_private"), std::string::npos)
        << u.status().message();
    EXPECT_TRUE(CheckWebhookUrl(url, true).ok()) << url;
  }
  auto metadata = CheckWebhookUrl("http://169.254.169.254/latest/meta-data/", true);
  EXPECT_EQ(metadata.status().code(), Code::kInvalidArgument);
}

}  // namespace
}  // namespace hutch::controller
