#include "cli/config.h"

#include <filesystem>
#include <fstream>

#include <gtest/gtest.h>

#include "cli/test_util.h"

namespace hutch::cli {
namespace {

using testing::ScopedEnv;
using testing::TempDir;

// Every test starts from an empty HOME and no HUTCH_* or XDG variables.
class ConfigTest : public ::testing::Test {
 protected:
  ConfigTest() {
    env_.Set("HOME", home_.path());
    env_.Unset("XDG_CONFIG_HOME");
    env_.Unset("HUTCH_URL");
    env_.Unset("HUTCH_TOKEN");
  }

  static void Write(const std::string& path, const std::string& text) {
    std::filesystem::create_directories(std::filesystem::path(path).parent_path());
    std::ofstream(path) << text;
  }
  std::string HomeConfig() const { return home_.path() + "/.config/hutch/config.yaml"; }

  TempDir home_;
  ScopedEnv env_;
};

TEST_F(ConfigTest, DefaultsWhenNothingIsSet) {
  auto c = ResolveClientConfig(std::nullopt, std::nullopt);
  ASSERT_TRUE(c.ok()) << c.status().ToString();
  EXPECT_EQ(c->url, "http://127.0.0.1:7070");
  EXPECT_EQ(c->url_source, "default");
  EXPECT_EQ(c->token, "");
}

TEST_F(ConfigTest, ReadsTheFileUnderHome) {
  Write(HomeConfig(), "url: http://10.0.0.5:7070\ntoken: tok-file\n");
  auto c = ResolveClientConfig(std::nullopt, std::nullopt);
  ASSERT_TRUE(c.ok()) << c.status().ToString();
  EXPECT_EQ(c->url, "http://10.0.0.5:7070");
  EXPECT_EQ(c->token, "tok-file");
  EXPECT_EQ(c->token_source, HomeConfig());
}

TEST_F(ConfigTest, XdgConfigHomeTakesThePlaceOfHome) {
  TempDir xdg;
  env_.Set("XDG_CONFIG_HOME", xdg.path());
  Write(HomeConfig(), "token: from-home\n");
  Write(xdg.path() + "/hutch/config.yaml", "token: from-xdg\n");
  EXPECT_EQ(ConfigFilePath(), xdg.path() + "/hutch/config.yaml");
  EXPECT_EQ(ResolveClientConfig(std::nullopt, std::nullopt)->token, "from-xdg");
}

TEST_F(ConfigTest, RelativeXdgConfigHomeIsIgnored) {
  env_.Set("XDG_CONFIG_HOME", "relative/dir");
  EXPECT_EQ(ConfigFilePath(), HomeConfig());
}

TEST_F(ConfigTest, EnvironmentBeatsFileAndFlagBeatsEnvironment) {
  Write(HomeConfig(), "url: http://file:1\ntoken: tok-file\n");
  env_.Set("HUTCH_URL", "http://env:2");
  env_.Set("HUTCH_TOKEN", "tok-env");
  auto c = ResolveClientConfig(std::nullopt, std::nullopt);
  EXPECT_EQ(c->url, "http://env:2");
  EXPECT_EQ(c->url_source, "HUTCH_URL");
  EXPECT_EQ(c->token, "tok-env");

  c = ResolveClientConfig(std::string("http://flag:3"), std::string("tok-flag"));
  EXPECT_EQ(c->url, "http://flag:3");
  EXPECT_EQ(c->url_source, "--url");
  EXPECT_EQ(c->token, "tok-flag");
  EXPECT_EQ(c->token_source, "--token");
}

TEST_F(ConfigTest, EachSettingFallsThroughOnItsOwn) {
  Write(HomeConfig(), "url: http://file:1\ntoken: tok-file\n");
  env_.Set("HUTCH_TOKEN", "tok-env");
  auto c = ResolveClientConfig(std::nullopt, std::nullopt);
  EXPECT_EQ(c->url, "http://file:1");
  EXPECT_EQ(c->token, "tok-env");
}

TEST_F(ConfigTest, EmptyValuesCountAsUnset) {
  Write(HomeConfig(), "token: tok-file\nurl:\n");
  env_.Set("HUTCH_TOKEN", "");
  auto c = ResolveClientConfig(std::string(""), std::nullopt);
  ASSERT_TRUE(c.ok()) << c.status().ToString();
  EXPECT_EQ(c->token, "tok-file");
  EXPECT_EQ(c->url, "http://127.0.0.1:7070");
}

TEST_F(ConfigTest, FileIsNotReadWhenFlagsAndEnvironmentSayEverything) {
  Write(HomeConfig(), "not: [valid");
  env_.Set("HUTCH_URL", "http://env:2");
  EXPECT_TRUE(ResolveClientConfig(std::nullopt, std::string("tok")).ok());
}

TEST_F(ConfigTest, UnknownKeyIsAnErrorNamingFileAndKey) {
  Write(HomeConfig(), "url: http://x:1\ntokne: oops\n");
  auto c = ResolveClientConfig(std::nullopt, std::nullopt);
  ASSERT_FALSE(c.ok());
  EXPECT_EQ(c.status().code(), Code::kInvalidArgument);
  EXPECT_NE(c.status().message().find(HomeConfig()), std::string::npos);
  EXPECT_NE(c.status().message().find("'tokne'"), std::string::npos);
}

TEST_F(ConfigTest, BrokenYamlAndNonMappingsAreErrorsNamingTheFile) {
  Write(HomeConfig(), "url: [unclosed\n");
  auto c = LoadConfigFile(HomeConfig());
  ASSERT_FALSE(c.ok());
  EXPECT_NE(c.status().message().find(HomeConfig()), std::string::npos);

  Write(HomeConfig(), "- a\n- b\n");
  EXPECT_FALSE(LoadConfigFile(HomeConfig()).ok());
  Write(HomeConfig(), "token: [a, b]\n");
  EXPECT_FALSE(LoadConfigFile(HomeConfig()).ok());
}

TEST_F(ConfigTest, MissingOrEmptyFileIsAnEmptyConfig) {
  auto c = LoadConfigFile(HomeConfig());
  ASSERT_TRUE(c.ok());
  EXPECT_FALSE(c->url);
  Write(HomeConfig(), "");
  c = LoadConfigFile(HomeConfig());
  ASSERT_TRUE(c.ok());
  EXPECT_FALSE(c->token);
}

TEST_F(ConfigTest, MissingTokenHelpSaysWhereTheTokenIs) {
  std::string help = MissingTokenHelp();
  EXPECT_NE(help.find("export HUTCH_TOKEN=$(cat /var/lib/hutch/admin.token)"), std::string::npos);
  EXPECT_NE(help.find(HomeConfig()), std::string::npos);
}

}  // namespace
}  // namespace hutch::cli
