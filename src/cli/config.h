// Where the CLI finds the server and its token. Each setting is taken from the first place that
// has it: the flag, then the environment (HUTCH_URL, HUTCH_TOKEN), then the config file
// ($XDG_CONFIG_HOME/hutch/config.yaml, else $HOME/.config/hutch/config.yaml; keys `url` and
// `token`), then the default. An empty value counts as unset everywhere.
#pragma once

#include <optional>
#include <string>

#include "common/status.h"

namespace hutch::cli {

inline constexpr const char* kDefaultUrl = "http://127.0.0.1:7070";
inline constexpr const char* kDefaultTokenFile = "/var/lib/hutch/admin.token";

struct ClientConfig {
  std::string url;
  std::string token;  // empty when none was found
  // Where each came from, for hints: "--url", "HUTCH_URL", the config file's path, "default".
  std::string url_source;
  std::string token_source;
};

// The contents of the config file; absent keys stay nullopt.
struct ConfigFile {
  std::optional<std::string> url;
  std::optional<std::string> token;
};

// $XDG_CONFIG_HOME/hutch/config.yaml when that variable holds an absolute path, else
// $HOME/.config/hutch/config.yaml; "" when neither is set.
std::string ConfigFilePath();

// A missing file is an empty config; a file that is not YAML, not a mapping, or has keys other
// than `url` and `token` is invalid_argument naming the file and the key.
Result<ConfigFile> LoadConfigFile(const std::string& path);

// Applies the precedence above. The file is read only when a flag or variable leaves a gap.
Result<ClientConfig> ResolveClientConfig(const std::optional<std::string>& flag_url,
                                         const std::optional<std::string>& flag_token);

// What to tell someone who has no token (several lines, no trailing newline).
std::string MissingTokenHelp();

}  // namespace hutch::cli
