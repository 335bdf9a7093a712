#include "api/config.h"

#include <gtest/gtest.h>
#include <stdlib.h>

#include <fstream>

namespace hutch::api {
namespace {

class ConfigTest : public ::testing::Test {
 protected:
  void SetUp() override {
    char tmpl[] = "/tmp/hutch-config-XXXXXX";
    ASSERT_TRUE(mkdtemp(tmpl));
    dir_ = tmpl;
    path_ = dir_ + "/config.yaml";
  }
  void TearDown() override {
    unlink(path_.c_str());
    rmdir(dir_.c_str());
  }
  void Write(const std::string& text) { std::ofstream(path_) << text; }
  std::string dir_, path_;
};

TEST_F(ConfigTest, LoadsFieldsAndDefaultsResources) {
  Write("listen: 127.0.0.1:0\ndata_dir: /tmp/x\ndefaults:\n  resources:\n    memory_mb: 256\n");
  ServerConfig c;
  ASSERT_TRUE(LoadConfigFile(path_, true, &c).ok());
  EXPECT_EQ(c.listen, "127.0.0.1:0");
  EXPECT_EQ(c.data_dir, "/tmp/x");
  EXPECT_EQ(c.default_resources.memory_mb, 256);
  EXPECT_EQ(c.default_resources.pids, core::Resources{}.pids);
  EXPECT_TRUE(ValidateConfig(c).ok());
}

TEST_F(ConfigTest, LoadsQuotaRateLimitAuditAndTls) {
  Write(
      "quota:\n  max_sessions: 5\n  max_cpus: 2.5\nrate_limit:\n  per_second: 0.5\n  burst: 3\n"
      "audit_retention_days: 7\ntls_cert: /c.pem\ntls_key: /k.pem\n");
  ServerConfig c;
  ASSERT_TRUE(LoadConfigFile(path_, true, &c).ok());
  EXPECT_EQ(c.default_quota.max_sessions, 5);
  EXPECT_EQ(c.default_quota.max_cpus, 2.5);
  EXPECT_FALSE(c.default_quota.max_memory_mb);
  EXPECT_EQ(c.rate_limit_per_second, 0.5);
  EXPECT_EQ(c.rate_limit_burst, 3);
  EXPECT_EQ(c.audit_retention_days, 7);
  EXPECT_EQ(c.tls_cert, "/c.pem");
  EXPECT_TRUE(ValidateConfig(c).ok());
  c.tls_key.clear();
  EXPECT_NE(ValidateConfig(c).message().find("tls_key"), std::string::npos);
}

TEST_F(ConfigTest, LoadsWebhooksAndDefaultsThemToPublicOnly) {
  ServerConfig defaults;
  EXPECT_FALSE(defaults.webhooks.allow_private);
  EXPECT_EQ(defaults.webhooks.workers, 4);
  EXPECT_EQ(defaults.webhooks.max_attempts, 8);
  Write("webhooks:\n  allow_private: true\n  workers: 2\n  max_attempts: 3\n");
  ServerConfig c;
  ASSERT_TRUE(LoadConfigFile(path_, true, &c).ok());
  EXPECT_TRUE(c.webhooks.allow_private);
  EXPECT_EQ(c.webhooks.workers, 2);
  EXPECT_EQ(c.webhooks.max_attempts, 3);
  EXPECT_TRUE(ValidateConfig(c).ok());
  c.webhooks.workers = 0;
  EXPECT_NE(ValidateConfig(c).message().find("webhooks.workers"), std::string::npos);
  c.webhooks.workers = 1;
  c.webhooks.max_attempts = 0;
  EXPECT_NE(ValidateConfig(c).message().find("webhooks.max_attempts"), std::string::npos);

  Write("webhooks:\n  allow_privat: true\n");
  Status st = LoadConfigFile(path_, true, &c);
  EXPECT_NE(st.message().find("webhooks.allow_privat"), std::string::npos) << st.message();
  EXPECT_NE(st.message().find("line 2"), std::string::npos) << st.message();
  Write("webhooks:\n  workers: lots\n");
  st = LoadConfigFile(path_, true, &c);
  EXPECT_NE(st.message().find("workers"), std::string::npos) << st.message();
  Write("webhooks: true\n");
  EXPECT_EQ(LoadConfigFile(path_, true, &c).code(), Code::kInvalidArgument);
}

TEST_F(ConfigTest, UnknownFieldAndWrongTypeNameTheFieldAndLine) {
  Write("listen: 127.0.0.1:0\nlisten_port: 5\n");
  ServerConfig c;
  Status st = LoadConfigFile(path_, true, &c);
  EXPECT_EQ(st.code(), Code::kInvalidArgument);
  EXPECT_NE(st.message().find("listen_port"), std::string::npos);
  EXPECT_NE(st.message().find("line 2"), std::string::npos);

  Write("io_threads: many\n");
  st = LoadConfigFile(path_, true, &c);
  EXPECT_NE(st.message().find("io_threads"), std::string::npos);
}

TEST_F(ConfigTest, UnknownNestedFieldsAreNamedWithTheirSection) {
  Write("quota:\n  max_session: 5\n");
  ServerConfig c;
  Status st = LoadConfigFile(path_, true, &c);
  EXPECT_NE(st.message().find("quota.max_session"), std::string::npos) << st.message();
  Write("defaults:\n  resources:\n    gpus: 1\n");
  st = LoadConfigFile(path_, true, &c);
  EXPECT_NE(st.message().find("defaults.resources.gpus"), std::string::npos) << st.message();
  Write("capacity: 5\n");
  st = LoadConfigFile(path_, true, &c);
  EXPECT_NE(st.message().find("must be a mapping"), std::string::npos) << st.message();
}

TEST_F(ConfigTest, LoadsLifecycleSettings) {
  Write(
      "capacity:\n  max_sessions: 3\npause_stops_clock: false\nmax_lifetime_seconds: 60\n"
      "expiry_warnings_seconds: [60, 10]\ncontroller_tick_ms: 50\n");
  ServerConfig c;
  ASSERT_TRUE(LoadConfigFile(path_, true, &c).ok());
  EXPECT_EQ(c.capacity.max_sessions, 3);
  EXPECT_FALSE(c.pause_stops_clock);
  EXPECT_EQ(c.max_lifetime_seconds, 60);
  EXPECT_EQ(c.expiry_warnings_seconds, (std::vector<int64_t>{60, 10}));
  EXPECT_EQ(c.controller_tick_ms, 50);
  EXPECT_TRUE(ValidateConfig(c).ok());
}

TEST_F(ConfigTest, NetworkSectionIsReadAndChecked) {
  Write("network:\n  subnet: 10.90.0.0/16\n  dns: [192.0.2.53, 198.51.100.53]\n  pool_size: 4\n");
  ServerConfig c;
  ASSERT_TRUE(LoadConfigFile(path_, true, &c).ok());
  EXPECT_EQ(c.nat_subnet, "10.90.0.0/16");
  EXPECT_EQ(c.nat_dns, (std::vector<std::string>{"192.0.2.53", "198.51.100.53"}));
  EXPECT_EQ(c.nat_pool_size, 4);
  EXPECT_TRUE(ValidateConfig(c).ok());
  c.nat_subnet = "10.90.0.1/16";
  EXPECT_NE(ValidateConfig(c).message().find("network.subnet"), std::string::npos);
  c.nat_subnet = "10.90.0.0/16";
  c.nat_dns = {"192.0.2.53", "resolver"};
  EXPECT_NE(ValidateConfig(c).message().find("network.dns[1]"), std::string::npos);
  Write("network:\n  bridge: br0\n");
  EXPECT_NE(LoadConfigFile(path_, true, &c).message().find("network.bridge"), std::string::npos);
}

TEST_F(ConfigTest, MissingFileIsAnErrorOnlyWhenRequired) {
  ServerConfig c;
  EXPECT_TRUE(LoadConfigFile(dir_ + "/none.yaml", false, &c).ok());
  EXPECT_EQ(LoadConfigFile(dir_ + "/none.yaml", true, &c).code(), Code::kNotFound);
}

TEST_F(ConfigTest, EnvironmentOverridesAndValidationNamesField) {
  ServerConfig c;
  setenv("HUTCH_LOG_LEVEL", "loud", 1);
  ApplyEnvironment(&c);
  unsetenv("HUTCH_LOG_LEVEL");
  EXPECT_EQ(c.log_level, "loud");
  Status st = ValidateConfig(c);
  EXPECT_NE(st.message().find("log_level"), std::string::npos);
  c.log_level = "info";
  c.data_dir = "relative";
  EXPECT_NE(ValidateConfig(c).message().find("data_dir"), std::string::npos);
}

TEST_F(ConfigTest, DriverIsLocalByDefaultAndComesFromFileThenEnvironment) {
  ServerConfig c;
  EXPECT_EQ(c.driver, "local");
  Write("driver: local-tcp\n");
  ASSERT_TRUE(LoadConfigFile(path_, true, &c).ok());
  EXPECT_EQ(c.driver, "local-tcp");
  setenv("HUTCH_DRIVER", "other", 1);
  ApplyEnvironment(&c);
  unsetenv("HUTCH_DRIVER");
  EXPECT_EQ(c.driver, "other");
  c.driver.clear();
  EXPECT_NE(ValidateConfig(c).message().find("driver"), std::string::npos);
}

TEST_F(ConfigTest, LoadsMeteringAndTheRateCardAndChecksThem) {
  ServerConfig defaults;
  EXPECT_EQ(defaults.metering_interval_seconds, 60);
  EXPECT_EQ(defaults.rates.cpu_hour, 0);
  Write(
      "metering:\n  interval_seconds: 5\n  bucket_seconds: 600\nrates:\n  currency: EUR\n"
      "  cpu_hour: 0.04\n  memory_gib_hour: 0.005\n  disk_gib_hour: 0.0002\n  network_gb: 0.09\n"
      "  platform_participant_hour: 0.25\n");
  ServerConfig c;
  ASSERT_TRUE(LoadConfigFile(path_, true, &c).ok());
  EXPECT_EQ(c.metering_interval_seconds, 5);
  EXPECT_EQ(c.metering_bucket_seconds, 600);
  EXPECT_EQ(c.rates.currency, "EUR");
  EXPECT_EQ(c.rates.cpu_hour, 0.04);
  EXPECT_EQ(c.rates.platform_participant_hour, 0.25);
  EXPECT_TRUE(ValidateConfig(c).ok());
  c.rates.network_gb = -1;
  EXPECT_NE(ValidateConfig(c).message().find("rates"), std::string::npos);
  c.rates.network_gb = 0;
  c.metering_bucket_seconds = 90;
  EXPECT_NE(ValidateConfig(c).message().find("metering.bucket_seconds"), std::string::npos);
  Write("rates:\n  per_cpu: 1\n");
  EXPECT_NE(LoadConfigFile(path_, true, &c).message().find("per_cpu"), std::string::npos);
}

}  // namespace
}  // namespace hutch::api
