#include "cli/config.h"

#include <cerrno>
#include <cstdlib>
#include <fstream>
#include <sstream>

#include <fmt/format.h>
#include <yaml-cpp/yaml.h>

namespace hutch::cli {

namespace {

std::optional<std::string> NonEmptyEnv(const char* name) {
  const char* v = std::getenv(name);
  if (v == nullptr || *v == '\0') return std::nullopt;
  return std::string(v);
}

std::optional<std::string> NonEmpty(const std::optional<std::string>& v) {
  if (v && !v->empty()) return v;
  return std::nullopt;
}

}  // namespace

std::string ConfigFilePath() {
  if (auto xdg = NonEmptyEnv("XDG_CONFIG_HOME"); xdg && xdg->front() == '/')
    return *xdg + "/hutch/config.yaml";
  if (auto home = NonEmptyEnv("HOME")) return *home + "/.config/hutch/config.yaml";
  return "";
}

Result<ConfigFile> LoadConfigFile(const std::string& path) {
  ConfigFile config;
  if (path.empty()) return config;
  std::ifstream in(path, std::ios::binary);
  if (!in) {
    int err = errno;
    if (err == ENOENT || err == ENOTDIR) return config;
    return ErrnoError(fmt::format("read {}", path), err);
  }
  std::ostringstream text;
  text << in.rdbuf();

  // yaml-cpp reports errors by exception; they stop here.
  YAML::Node root;
  try {
    root = YAML::Load(text.str());
  } catch (const YAML::Exception& e) {
    return InvalidArgument(fmt::format("{} is not valid YAML: {}", path, e.what()));
  }
  if (root.IsNull()) return config;
  if (!root.IsMap())
    return InvalidArgument(fmt::format("{} must be a mapping with the keys url and token", path));
  for (const auto& kv : root) {
    std::string key = kv.first.Scalar();
    std::optional<std::string>* field = key == "url"     ? &config.url
                                        : key == "token" ? &config.token
                                                         : nullptr;
    if (field == nullptr)
      return InvalidArgument(
          fmt::format("{}: unknown key '{}' (the known keys are url and token)", path, key));
    if (kv.second.IsNull()) continue;
    if (!kv.second.IsScalar())
      return InvalidArgument(fmt::format("{}: {} must be a string", path, key));
    *field = kv.second.Scalar();
  }
  return config;
}

Result<ClientConfig> ResolveClientConfig(const std::optional<std::string>& flag_url,
                                         const std::optional<std::string>& flag_token) {
  ClientConfig out;
  if (auto v = NonEmpty(flag_url)) {
    out.url = *v;
    out.url_source = "--url";
  } else if (auto env = NonEmptyEnv("HUTCH_URL")) {
    out.url = *env;
    out.url_source = "HUTCH_URL";
  }
  if (auto v = NonEmpty(flag_token)) {
    out.token = *v;
    out.token_source = "--token";
  } else if (auto env = NonEmptyEnv("HUTCH_TOKEN")) {
    out.token = *env;
    out.token_source = "HUTCH_TOKEN";
  }
  if (out.url.empty() || out.token.empty()) {
    std::string path = ConfigFilePath();
    ASSIGN_OR_RETURN(ConfigFile file, LoadConfigFile(path));
    if (out.url.empty() && NonEmpty(file.url)) {
      out.url = *file.url;
      out.url_source = path;
    }
    if (out.token.empty() && NonEmpty(file.token)) {
      out.token = *file.token;
      out.token_source = path;
    }
  }
  if (out.url.empty()) {
    out.url = kDefaultUrl;
    out.url_source = "default";
  }
  return out;
}

std::string MissingTokenHelp() {
  std::string path = ConfigFilePath();
  return fmt::format(
      "no API token: pass --token, set HUTCH_TOKEN, or put `token: …` in {}.\n"
      "The server writes its admin token to DATA_DIR/admin.token (default {}, readable by root):\n"
      "  export HUTCH_TOKEN=$(cat {})    # or $(sudo cat …)",
      path.empty() ? "~/.config/hutch/config.yaml" : path, kDefaultTokenFile, kDefaultTokenFile);
}

}  // namespace hutch::cli
