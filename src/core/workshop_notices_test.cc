#include "core/workshop_notices.h"

#include <gtest/gtest.h>

namespace hutch::core {
namespace {

TEST(WorkshopNoticesTest, PlaceholdersAreFilledAndUnknownBracesKept) {
  NoticeVars v{"Ada", "Kubernetes 101", "k8s", "https://labs.example.com/access#s", 9};
  EXPECT_EQ(RenderNotice("Hi {name}: {title} ({workshop}) ends in {minutes_left} min, "
                         "{access_url} {other} {",
                         v),
            "Hi Ada: Kubernetes 101 (k8s) ends in 9 min, https://labs.example.com/access#s "
            "{other} {");
  EXPECT_TRUE(NeedsAccessUrl("open {access_url}"));
  EXPECT_FALSE(NeedsAccessUrl("open {access}"));
}

TEST(WorkshopNoticesTest, ARequestChangesOnlyWhatItNamesAndFalseSwitchesOff) {
  Result<WorkshopNotices> n = ParseNotices(
      json::parse(
          R"({"on_warning":{"minutes":3,"subject":"{minutes_left} left"},"on_ending":false})"),
      DefaultNotices());
  ASSERT_TRUE(n.ok()) << n.status().ToString();
  EXPECT_EQ(n->warning_minutes, 3);
  EXPECT_EQ(n->on_warning.subject, "{minutes_left} left");
  EXPECT_EQ(n->on_warning.body, DefaultNotices().on_warning.body);
  EXPECT_FALSE(n->on_ending.enabled);
  EXPECT_TRUE(n->on_ready.enabled);
  // The stored form reads back the same.
  WorkshopNotices back = NoticesFromStored(json::serialize(ToJson(*n)));
  EXPECT_EQ(back.warning_minutes, 3);
  EXPECT_FALSE(back.on_ending.enabled);
  EXPECT_EQ(back.on_warning.subject, "{minutes_left} left");
  EXPECT_EQ(NoticesFromStored("{}").on_ready.subject, DefaultNotices().on_ready.subject);
}

TEST(WorkshopNoticesTest, BadFieldsAreNamed) {
  auto err = [](std::string_view text) {
    Result<WorkshopNotices> n = ParseNotices(json::parse(text), DefaultNotices());
    return n.ok() ? std::string() : n.status().message();
  };
  EXPECT_NE(err(R"({"on_start":{}})").find("on_start"), std::string::npos);
  EXPECT_NE(err(R"({"on_warning":{"minutes":0}})").find("notices.on_warning.minutes"),
            std::string::npos);
  EXPECT_NE(err(R"({"on_ready":{"subject":"a\nb"}})").find("one line"), std::string::npos);
  EXPECT_NE(err(R"({"on_ready":"yes"})").find("notices.on_ready"), std::string::npos);
}

}  // namespace
}  // namespace hutch::core
