#include "cli/config.h"

#include <sys/stat.h>

#include <filesystem>
#include <fstream>
#include <sstream>

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
    env_.Unset("HUTCH_CA_CERT");
    env_.Unset("HUTCH_INSECURE");
  }

  static void Write(const std::string& path, const std::string& text) {
    std::filesystem::create_directories(std::filesystem::path(path).parent_path());
    std::ofstream(path) << text;
  }
  std::string HomeConfig() const { return home_.path() + "/.config/hutch/config.yaml"; }
  static std::string Read(const std::string& path) {
    std::ifstream in(path);
    std::ostringstream text;
    text << in.rdbuf();
    return text.str();
  }
  static mode_t Mode(const std::string& path) {
    struct stat st;
    EXPECT_EQ(::stat(path.c_str(), &st), 0) << path;
    return st.st_mode & 07777;
  }

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

// ---- TLS settings -------------------------------------------------------------------------

TEST_F(ConfigTest, CaCertComesFromFlagEnvironmentOrFile) {
  Write(HomeConfig(), "url: https://h:1\ntoken: t\nca_cert: /etc/file-ca.pem\n");
  auto c = ResolveClientConfig(ConfigFlags{});
  ASSERT_TRUE(c.ok()) << c.status().ToString();
  EXPECT_EQ(c->ca_cert, "/etc/file-ca.pem");
  EXPECT_EQ(c->ca_cert_source, HomeConfig());

  env_.Set("HUTCH_CA_CERT", "/env-ca.pem");
  EXPECT_EQ(ResolveClientConfig(ConfigFlags{})->ca_cert, "/env-ca.pem");
  ConfigFlags flags;
  flags.ca_cert = "/flag-ca.pem";
  c = ResolveClientConfig(flags);
  EXPECT_EQ(c->ca_cert, "/flag-ca.pem");
  EXPECT_EQ(c->ca_cert_source, "--ca-cert");
}

TEST_F(ConfigTest, RelativeCaCertInTheFileIsRelativeToItsDirectory) {
  Write(HomeConfig(), "url: https://h:1\ntoken: t\nca_cert: server.pem\n");
  EXPECT_EQ(ResolveClientConfig(ConfigFlags{})->ca_cert,
            home_.path() + "/.config/hutch/server.pem");
}

TEST_F(ConfigTest, InsecureFromFlagOrEnvironmentButNeverTheFile) {
  EXPECT_FALSE(ResolveClientConfig(ConfigFlags{})->insecure);
  env_.Set("HUTCH_INSECURE", "1");
  auto c = ResolveClientConfig(ConfigFlags{});
  EXPECT_TRUE(c->insecure);
  EXPECT_EQ(c->insecure_source, "HUTCH_INSECURE");
  env_.Set("HUTCH_INSECURE", "0");
  EXPECT_FALSE(ResolveClientConfig(ConfigFlags{})->insecure);
  env_.Set("HUTCH_INSECURE", "maybe");
  EXPECT_EQ(ResolveClientConfig(ConfigFlags{}).status().code(), Code::kInvalidArgument);
  ConfigFlags flags;
  flags.insecure = true;
  c = ResolveClientConfig(flags);
  EXPECT_TRUE(c->insecure);
  EXPECT_EQ(c->insecure_source, "--insecure");

  env_.Unset("HUTCH_INSECURE");
  Write(HomeConfig(), "insecure: true\n");
  EXPECT_EQ(ResolveClientConfig(ConfigFlags{}).status().code(), Code::kInvalidArgument);
}

TEST_F(ConfigTest, HttpsUrlWithoutATrustSettingReadsTheFileForCaCert) {
  Write(HomeConfig(), "ca_cert: /ca.pem\n");
  ConfigFlags flags;
  flags.url = "https://h:1";
  flags.token = "t";
  EXPECT_EQ(ResolveClientConfig(flags)->ca_cert, "/ca.pem");
  flags.url = "http://h:1";
  EXPECT_EQ(ResolveClientConfig(flags)->ca_cert, "");
}

// ---- writing the file ---------------------------------------------------------------------

TEST_F(ConfigTest, UpdateCreatesAPrivateFileInAPrivateDirectory) {
  ASSERT_TRUE(
      UpdateConfigFile(HomeConfig(), {{"url", "https://h:7443"}, {"token", "hutch_T"}}).ok());
  EXPECT_EQ(Read(HomeConfig()), "url: https://h:7443\ntoken: hutch_T\n");
  EXPECT_EQ(Mode(HomeConfig()), 0600u);
  EXPECT_EQ(Mode(home_.path() + "/.config/hutch"), 0700u);
  EXPECT_EQ(Mode(home_.path() + "/.config"), 0700u);
  auto c = ResolveClientConfig(ConfigFlags{});
  EXPECT_EQ(c->url, "https://h:7443");
  EXPECT_EQ(c->token, "hutch_T");
  // Nothing left behind but the file.
  int entries = 0;
  for ([[maybe_unused]] const auto& e :
       std::filesystem::directory_iterator(home_.path() + "/.config/hutch"))
    ++entries;
  EXPECT_EQ(entries, 1);
}

TEST_F(ConfigTest, UpdateKeepsOtherKeysAndCommentsAndNarrowsTheModes) {
  Write(HomeConfig(), "# my hutch\nurl: http://old:1   # the lab\ntoken: old\nca_cert: /ca.pem\n");
  ::chmod(HomeConfig().c_str(), 0644);
  ::chmod((home_.path() + "/.config/hutch").c_str(), 0755);
  ASSERT_TRUE(UpdateConfigFile(HomeConfig(), {{"token", "new"}}).ok());
  EXPECT_EQ(Read(HomeConfig()),
            "# my hutch\nurl: http://old:1   # the lab\ntoken: new\nca_cert: /ca.pem\n");
  EXPECT_EQ(Mode(HomeConfig()), 0600u);
  EXPECT_EQ(Mode(home_.path() + "/.config/hutch"), 0700u);
}

TEST_F(ConfigTest, UpdateRemovesAKey) {
  Write(HomeConfig(), "url: http://h:1\ntoken: t\n");
  ASSERT_TRUE(UpdateConfigFile(HomeConfig(), {{"token", std::nullopt}}).ok());
  EXPECT_EQ(Read(HomeConfig()), "url: http://h:1\n");
  ASSERT_TRUE(UpdateConfigFile(HomeConfig(), {{"token", std::nullopt}}).ok());
  EXPECT_EQ(Read(HomeConfig()), "url: http://h:1\n");
}

TEST_F(ConfigTest, UpdateWritesUnderXdgConfigHome) {
  TempDir xdg;
  env_.Set("XDG_CONFIG_HOME", xdg.path() + "/conf");
  ASSERT_TRUE(UpdateConfigFile(ConfigFilePath(), {{"token", "t"}}).ok());
  EXPECT_EQ(Read(xdg.path() + "/conf/hutch/config.yaml"), "token: t\n");
  EXPECT_EQ(Mode(xdg.path() + "/conf/hutch"), 0700u);
  EXPECT_FALSE(std::filesystem::exists(HomeConfig()));
}

TEST_F(ConfigTest, UpdateQuotesValuesThatYamlWouldMisread) {
  for (std::string v : {"null", "~", "a b", "x: y", "#x", "-x", "quote\"back\\slash", "end:", ""}) {
    ASSERT_TRUE(UpdateConfigFile(HomeConfig(), {{"token", v}}).ok()) << v;
    auto c = LoadConfigFile(HomeConfig());
    ASSERT_TRUE(c.ok()) << v << ": " << c.status().ToString();
    EXPECT_EQ(c->token.value_or("<none>"), v);
  }
}

TEST_F(ConfigTest, UpdateRewritesAFlowMappingItCannotEditLineByLine) {
  Write(HomeConfig(), "{url: http://h:1, token: old}\n");
  ASSERT_TRUE(UpdateConfigFile(HomeConfig(), {{"token", "new"}}).ok());
  auto c = LoadConfigFile(HomeConfig());
  ASSERT_TRUE(c.ok()) << c.status().ToString();
  EXPECT_EQ(c->url, "http://h:1");
  EXPECT_EQ(c->token, "new");
}

TEST_F(ConfigTest, UpdateWritesThroughASymlink) {
  TempDir dotfiles;
  std::string real = dotfiles.path() + "/hutch.yaml";
  Write(real, "url: http://h:1\n");
  std::filesystem::create_directories(home_.path() + "/.config/hutch");
  std::filesystem::create_symlink(real, HomeConfig());
  ASSERT_TRUE(UpdateConfigFile(HomeConfig(), {{"token", "t"}}).ok());
  EXPECT_TRUE(std::filesystem::is_symlink(HomeConfig()));
  EXPECT_EQ(Read(real), "url: http://h:1\ntoken: t\n");
}

TEST_F(ConfigTest, UpdateRefusesToCarryABrokenFileAlong) {
  Write(HomeConfig(), "tokne: oops\n");
  Status s = UpdateConfigFile(HomeConfig(), {{"token", "t"}});
  EXPECT_EQ(s.code(), Code::kInvalidArgument);
  EXPECT_NE(s.message().find("'tokne'"), std::string::npos) << s.message();
  EXPECT_EQ(Read(HomeConfig()), "tokne: oops\n");
}

TEST_F(ConfigTest, MissingTokenHelpSaysWhereTheTokenIs) {
  std::string help = MissingTokenHelp();
  EXPECT_NE(help.find("export HUTCH_TOKEN=$(cat /var/lib/hutch/admin.token)"), std::string::npos);
  EXPECT_NE(help.find(HomeConfig()), std::string::npos);
  EXPECT_NE(help.find("hutch login"), std::string::npos);
}

}  // namespace
}  // namespace hutch::cli
