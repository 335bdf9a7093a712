// Where the CLI finds the server, its token and how to trust its certificate. Each setting is
// taken from the first place that has it: the flag, then the environment (HUTCH_URL, HUTCH_TOKEN,
// HUTCH_CA_CERT, HUTCH_INSECURE), then the config file ($XDG_CONFIG_HOME/hutch/config.yaml, else
// $HOME/.config/hutch/config.yaml; keys `url`, `token` and `ca_cert`), then the default. An empty
// value counts as unset everywhere.
//
// `hutch login` writes the file (UpdateConfigFile); everything else only reads it.
#pragma once

#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "common/status.h"

namespace hutch::cli {

inline constexpr const char* kDefaultUrl = "http://127.0.0.1:7070";
inline constexpr const char* kDefaultTokenFile = "/var/lib/hutch/admin.token";

struct ClientConfig {
  std::string url;
  std::string token;  // empty when none was found
  // A PEM file of certificates to trust for https instead of the system's; empty: the system's.
  std::string ca_cert;
  // Skip certificate verification (--insecure, HUTCH_INSECURE=1); never from the file.
  bool insecure = false;
  // Where each came from, for hints: "--url", "HUTCH_URL", the config file's path, "default".
  std::string url_source;
  std::string token_source;
  std::string ca_cert_source;
  std::string insecure_source;
};

// The contents of the config file; absent keys stay nullopt.
struct ConfigFile {
  std::optional<std::string> url;
  std::optional<std::string> token;
  // As written; a relative path is relative to the file's directory (ResolveClientConfig makes
  // it absolute).
  std::optional<std::string> ca_cert;
};

// The config file's keys, in the order `hutch login` writes them.
inline constexpr const char* kConfigKeys[] = {"url", "token", "ca_cert"};

// What the command line said; nullopt or "" when a flag was not given.
struct ConfigFlags {
  std::optional<std::string> url;
  std::optional<std::string> token;
  std::optional<std::string> ca_cert;
  bool insecure = false;
};

// $XDG_CONFIG_HOME/hutch/config.yaml when that variable holds an absolute path, else
// $HOME/.config/hutch/config.yaml; "" when neither is set.
std::string ConfigFilePath();

// A missing file is an empty config; a file that is not YAML, not a mapping, or has keys other
// than url, token and ca_cert is invalid_argument naming the file and the key.
Result<ConfigFile> LoadConfigFile(const std::string& path);

// Applies the precedence above. The file is read only when a flag or variable leaves a gap: no
// url, no token, or an https URL with neither a CA file nor insecure. HUTCH_INSECURE is on for
// 1, true or yes and off for 0, false, no or empty; anything else is invalid_argument.
Result<ClientConfig> ResolveClientConfig(const ConfigFlags& flags);
Result<ClientConfig> ResolveClientConfig(const std::optional<std::string>& flag_url,
                                         const std::optional<std::string>& flag_token);

// Sets (a value) or removes (nullopt) top-level keys of the config file at `path` and keeps the
// rest of it: other keys, comments, order. A missing file is created, and missing directories
// with mode 0700 (the file's own directory is also made 0700 if it is wider). The new contents
// replace the old atomically (a temporary file renamed over it; through a symlink, its target),
// with mode 0600. The existing file must load (LoadConfigFile), so a typo is reported rather
// than carried along.
Status UpdateConfigFile(const std::string& path,
                        const std::vector<std::pair<std::string, std::optional<std::string>>>& set);

// What to tell someone who has no token (several lines, no trailing newline).
std::string MissingTokenHelp();

}  // namespace hutch::cli
