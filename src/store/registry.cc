#include "store/registry.h"

#include <algorithm>
#include <cctype>
#include <map>
#include <mutex>
#include <regex>

#include <fmt/format.h>

namespace hutch::store {

namespace {

struct Registry {
  std::mutex mu;
  std::map<std::string, StoreFactory> factories;
};

Registry& TheRegistry() {
  static Registry* const r = new Registry;  // never destroyed: factories outlive static dtors
  return *r;
}

}  // namespace

void RegisterStore(std::string scheme, StoreFactory factory) {
  Registry& r = TheRegistry();
  std::lock_guard lock(r.mu);
  r.factories[std::move(scheme)] = std::move(factory);
}

std::vector<std::string> RegisteredStores() {
  RegisterBuiltinStores();
  Registry& r = TheRegistry();
  std::lock_guard lock(r.mu);
  std::vector<std::string> out;
  for (const auto& [name, _] : r.factories) out.push_back(name);
  return out;
}

std::string StoreScheme(std::string_view url) {
  size_t colon = url.find(':');
  if (colon == std::string_view::npos) return "";
  std::string scheme(url.substr(0, colon));
  for (char c : scheme)
    if (!std::isalnum(static_cast<unsigned char>(c)) && c != '+' && c != '-' && c != '.') return "";
  std::transform(scheme.begin(), scheme.end(), scheme.begin(),
                 [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  return scheme;
}

std::string RedactStoreUrl(std::string_view url) {
  std::string out(url);
  // scheme://user:password@host — the password runs to the last '@' of the authority.
  if (size_t start = out.find("://"); start != std::string::npos) {
    start += 3;
    size_t end = out.find_first_of("/?", start);
    std::string_view authority =
        std::string_view(out).substr(start, end == std::string::npos ? out.npos : end - start);
    size_t at = authority.rfind('@');
    if (at != std::string_view::npos) {
      size_t colon = authority.find(':');
      if (colon != std::string_view::npos && colon < at)
        out.replace(start + colon + 1, at - colon - 1, "***");
    }
  }
  static const std::regex kPasswordParam(R"(([?&]password=)[^&]*)", std::regex::icase);
  return std::regex_replace(out, kPasswordParam, "$1***");
}

Result<std::unique_ptr<Store>> OpenStore(std::string_view url, const StoreOptions& options) {
  RegisterBuiltinStores();
  std::string target = url.empty() ? std::string("sqlite:") : std::string(url);
  std::string scheme = StoreScheme(target);
  StoreFactory factory;
  {
    Registry& r = TheRegistry();
    std::lock_guard lock(r.mu);
    if (auto it = r.factories.find(scheme); it != r.factories.end()) factory = it->second;
  }
  if (!factory) {
    std::vector<std::string> known = RegisteredStores();
    return InvalidArgument(fmt::format("store '{}': unknown kind '{}'; known: {}",
                                       RedactStoreUrl(target), scheme, fmt::join(known, ", ")));
  }
  return factory(target, options);
}

}  // namespace hutch::store
