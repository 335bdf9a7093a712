// The server picks its driver by name (drivers/registry.h): `driver:` in the config file,
// HUTCH_DRIVER or --driver. These run the real `hutch` executable, so they also prove that the
// local driver's registration (an OBJECT library nothing names) is linked in.
#include <stdio.h>
#include <stdlib.h>
#include <sys/wait.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <fstream>
#include <string>

#include "cli/http_client.h"
#include "testing/server_process.h"

namespace hutch {
namespace {

// Runs `command` through the shell; its exit status and what it wrote to stdout and stderr.
int RunShell(const std::string& command, std::string* output) {
  FILE* p = popen((command + " 2>&1").c_str(), "r");
  if (!p) return -1;
  char buf[4096];
  size_t n;
  while ((n = fread(buf, 1, sizeof buf, p)) > 0) output->append(buf, n);
  int status = pclose(p);
  return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

TEST(DriverSelectionTest, AnUnknownDriverStopsServeNamingTheRegisteredOnes) {
  char tmpl[] = "/tmp/hutch-driver-XXXXXX";
  ASSERT_TRUE(mkdtemp(tmpl));
  std::string dir = tmpl;
  std::string out;
  int code = RunShell(std::string(HUTCH_BINARY) + " serve --listen 127.0.0.1:0 --data-dir " + dir +
                          " --driver no-such-driver",
                      &out);
  hutch::testing::RemoveTree(dir);
  EXPECT_NE(code, 0) << out;
  EXPECT_NE(out.find("driver 'no-such-driver' is not known"), std::string::npos) << out;
  EXPECT_NE(out.find("local"), std::string::npos) << "the registered drivers are named: " << out;
}

TEST(DriverSelectionTest, DriverLocalFromTheConfigFileMakesSessionsOnNodeLocal) {
  if (geteuid() != 0) GTEST_SKIP() << "needs root (namespaces, mounts, cgroups)";
  char tmpl[] = "/tmp/hutch-driver-config-XXXXXX";
  ASSERT_TRUE(mkdtemp(tmpl));
  std::string config_dir = tmpl;
  std::string config = config_dir + "/config.yaml";
  std::ofstream(config) << "driver: local\n";
  {
    auto server = hutch::testing::ServerProcess::Start(HUTCH_BINARY, "", {"--config", config});
    ASSERT_TRUE(server.ok()) << server.status().ToString();
    auto http = client::HttpClient::Create((*server)->url(), (*server)->token());
    ASSERT_TRUE(http.ok());
    client::ApiClient api(std::move(*http));
    auto s = api.CreateSession(json::parse(R"({"name": "on-local"})").as_object());
    ASSERT_TRUE(s.ok()) << s.status().ToString();
    EXPECT_EQ(s->node, "local");
    EXPECT_TRUE(api.DeleteSession(s->id).ok());
  }
  hutch::testing::RemoveTree(config_dir);
}

}  // namespace
}  // namespace hutch
