#include "drivers/registry.h"

#include <algorithm>
#include <map>
#include <mutex>

#include <fmt/format.h>

namespace hutch::drivers {

namespace {

struct Registry {
  std::mutex mu;
  std::map<std::string, DriverFactory, std::less<>> factories;  // GUARDED_BY(mu)
};

// A function-local static: registrations run during static initialization of other
// translation units, in an order the language leaves open.
Registry& TheRegistry() {
  static Registry registry;
  return registry;
}

}  // namespace

bool RegisterDriver(std::string name, DriverFactory factory) {
  Registry& r = TheRegistry();
  std::lock_guard lock(r.mu);
  return r.factories.emplace(std::move(name), std::move(factory)).second;
}

Result<std::unique_ptr<Driver>> NewDriver(std::string_view name, const DriverParams& params) {
  DriverFactory factory;
  {
    Registry& r = TheRegistry();
    std::lock_guard lock(r.mu);
    auto it = r.factories.find(name);
    if (it != r.factories.end()) factory = it->second;
  }
  if (!factory) {
    std::vector<std::string> names = RegisteredDrivers();
    std::string known;
    for (const auto& n : names) known += (known.empty() ? "" : ", ") + n;
    return InvalidArgument(fmt::format("driver '{}' is not known; this hutch has: {}", name,
                                       known.empty() ? "none" : known));
  }
  return factory(params);
}

std::vector<std::string> RegisteredDrivers() {
  Registry& r = TheRegistry();
  std::lock_guard lock(r.mu);
  std::vector<std::string> names;
  for (const auto& [name, factory] : r.factories) names.push_back(name);
  return names;
}

}  // namespace hutch::drivers
