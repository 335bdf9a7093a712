#include "drivers/registry.h"

#include <gtest/gtest.h>

#include <algorithm>

namespace hutch::drivers {
namespace {

// Does nothing; the registry only makes it.
class NamedDriver final : public Driver {
 public:
  explicit NamedDriver(std::string node) : node_(std::move(node)) {}
  std::string Node() const override { return node_; }
  Result<std::string> Create(const SandboxSpec&) override { return Unavailable("test"); }
  Result<core::ExecResult> Exec(const std::string&, const std::string&,
                                const core::ExecRequest&) override {
    return Unavailable("test");
  }
  bool IsAlive(const std::string&, const std::string&) override { return false; }
  Status Destroy(const std::string&, const std::string&) override { return Status::Ok(); }
  Status Pause(const std::string&, const std::string&) override { return Status::Ok(); }
  Status Resume(const std::string&, const std::string&) override { return Status::Ok(); }
  Status Stop(const std::string&, const std::string&) override { return Status::Ok(); }
  Result<std::vector<std::string>> ListSandboxes() override { return std::vector<std::string>{}; }

 private:
  std::string node_;
};

const DriverRegistration kTestDriver("registry-test", [](const DriverParams& params) {
  return Result<std::unique_ptr<Driver>>(std::make_unique<NamedDriver>(params.data_dir));
});

TEST(DriverRegistryTest, MakesARegisteredDriverWithTheServersParams) {
  DriverParams params;
  params.data_dir = "/data";
  auto d = NewDriver("registry-test", params);
  ASSERT_TRUE(d.ok()) << d.status().ToString();
  EXPECT_EQ((*d)->Node(), "/data");
}

TEST(DriverRegistryTest, AnUnknownNameIsRefusedNamingTheKnownOnes) {
  auto d = NewDriver("nope", DriverParams{});
  ASSERT_FALSE(d.ok());
  EXPECT_EQ(d.status().code(), Code::kInvalidArgument);
  EXPECT_NE(d.status().message().find("'nope'"), std::string::npos);
  EXPECT_NE(d.status().message().find("registry-test"), std::string::npos);
}

TEST(DriverRegistryTest, ANameIsRegisteredOnce) {
  EXPECT_FALSE(RegisterDriver("registry-test", [](const DriverParams&) {
    return Result<std::unique_ptr<Driver>>(Unavailable("second"));
  }));
  auto d = NewDriver("registry-test", DriverParams{});
  ASSERT_TRUE(d.ok());
  std::vector<std::string> names = RegisteredDrivers();
  EXPECT_EQ(std::count(names.begin(), names.end(), "registry-test"), 1);
}

}  // namespace
}  // namespace hutch::drivers
