#include "cli/config.h"

#include <fcntl.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <cstdlib>
#include <fstream>
#include <sstream>

#include <fmt/format.h>
#include <yaml-cpp/yaml.h>

#include "common/scope_guard.h"

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

std::string ToLower(std::string_view s) {
  std::string out(s);
  for (char& c : out)
    if (c >= 'A' && c <= 'Z') c = static_cast<char>(c - 'A' + 'a');
  return out;
}

bool IsHttps(std::string_view url) { return ToLower(url.substr(0, 8)) == "https://"; }

bool IsKnownKey(std::string_view key) {
  return std::find(std::begin(kConfigKeys), std::end(kConfigKeys), key) != std::end(kConfigKeys);
}

std::string Dirname(const std::string& path) {
  size_t slash = path.rfind('/');
  if (slash == std::string::npos) return ".";
  if (slash == 0) return "/";
  return path.substr(0, slash);
}

// Reads `path` whole; nullopt when it does not exist.
Result<std::optional<std::string>> ReadFileIfExists(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) {
    int err = errno;
    if (err == ENOENT || err == ENOTDIR) return std::optional<std::string>();
    return ErrnoError(fmt::format("read {}", path), err);
  }
  std::ostringstream text;
  text << in.rdbuf();
  return std::optional<std::string>(text.str());
}

Result<ConfigFile> ParseConfig(const std::string& text, const std::string& path) {
  ConfigFile config;
  // yaml-cpp reports errors by exception; they stop here.
  YAML::Node root;
  try {
    root = YAML::Load(text);
  } catch (const YAML::Exception& e) {
    return InvalidArgument(fmt::format("{} is not valid YAML: {}", path, e.what()));
  }
  if (root.IsNull()) return config;
  if (!root.IsMap())
    return InvalidArgument(
        fmt::format("{} must be a mapping with the keys url, token and ca_cert", path));
  for (const auto& kv : root) {
    std::string key = kv.first.Scalar();
    std::optional<std::string>* field = key == "url"       ? &config.url
                                        : key == "token"   ? &config.token
                                        : key == "ca_cert" ? &config.ca_cert
                                                           : nullptr;
    if (field == nullptr)
      return InvalidArgument(fmt::format(
          "{}: unknown key '{}' (the known keys are url, token and ca_cert)", path, key));
    if (kv.second.IsNull()) continue;
    if (!kv.second.IsScalar())
      return InvalidArgument(fmt::format("{}: {} must be a string", path, key));
    *field = kv.second.Scalar();
  }
  return config;
}

std::optional<std::string>* Field(ConfigFile& c, std::string_view key) {
  if (key == "url") return &c.url;
  if (key == "token") return &c.token;
  return &c.ca_cert;
}

// `value` as a YAML scalar: plain when that reads back as the same string, else double-quoted.
std::string YamlScalar(std::string_view value) {
  auto plain_char = [](char c) {
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
           std::string_view("_./~+=-:,@%").find(c) != std::string_view::npos;
  };
  std::string lower = ToLower(value);
  bool plain = !value.empty() && std::all_of(value.begin(), value.end(), plain_char) &&
               std::string_view("@%:,-").find(value.front()) == std::string_view::npos &&
               value.back() != ':' && lower != "~" && lower != "null";
  if (plain) return std::string(value);
  std::string out = "\"";
  for (char c : value) {
    if (c == '"' || c == '\\') {
      out += '\\';
      out += c;
    } else if (static_cast<unsigned char>(c) < 0x20) {
      out += fmt::format("\\x{:02x}", static_cast<unsigned char>(c));
    } else {
      out += c;
    }
  }
  return out + "\"";
}

// The top-level key a line starts, or "" ("url: x" → "url"; comments, indented and blank lines
// start none).
std::string TopLevelKey(std::string_view line) {
  size_t end = 0;
  while (end < line.size() && (std::isalnum(static_cast<unsigned char>(line[end])) ||
                               line[end] == '_' || line[end] == '-'))
    ++end;
  if (end == 0) return "";
  size_t colon = end;
  while (colon < line.size() && line[colon] == ' ') ++colon;
  if (colon >= line.size() || line[colon] != ':') return "";
  return std::string(line.substr(0, end));
}

// Rewrites the lines of the keys in `set` and keeps every other line. Block-style files only;
// the caller checks the result and falls back to WriteConfig otherwise.
std::string EditConfigText(
    const std::string& text,
    const std::vector<std::pair<std::string, std::optional<std::string>>>& set) {
  std::vector<std::string> lines;
  std::istringstream in(text);
  for (std::string line; std::getline(in, line);) lines.push_back(line);
  std::vector<std::string> out;
  std::vector<std::string> written;
  bool skipping = false;  // inside the continuation lines of a key being replaced
  for (const std::string& line : lines) {
    if (skipping && !line.empty() && (line[0] == ' ' || line[0] == '\t')) continue;
    skipping = false;
    std::string key = TopLevelKey(line);
    auto it = std::find_if(set.begin(), set.end(), [&](const auto& kv) { return kv.first == key; });
    if (key.empty() || it == set.end()) {
      out.push_back(line);
      continue;
    }
    skipping = true;
    if (it->second && std::find(written.begin(), written.end(), key) == written.end()) {
      out.push_back(fmt::format("{}: {}", key, YamlScalar(*it->second)));
      written.push_back(key);
    }
  }
  for (const auto& [key, value] : set)
    if (value && std::find(written.begin(), written.end(), key) == written.end())
      out.push_back(fmt::format("{}: {}", key, YamlScalar(*value)));
  std::string result;
  for (const auto& line : out) result += line + "\n";
  return result;
}

std::string WriteConfig(const ConfigFile& c) {
  std::string out;
  ConfigFile copy = c;
  for (const char* key : kConfigKeys)
    if (const auto& v = *Field(copy, key)) out += fmt::format("{}: {}\n", key, YamlScalar(*v));
  return out;
}

// Creates `dir` and its missing parents with mode 0700, and narrows `dir` itself to 0700.
Status MakePrivateDir(const std::string& dir) {
  std::vector<std::string> missing;
  for (std::string d = dir; !d.empty() && d != "/" && d != ".";) {
    struct stat st;
    if (::stat(d.c_str(), &st) == 0) {
      if (!S_ISDIR(st.st_mode)) return InvalidArgument(fmt::format("{} is not a directory", d));
      break;
    }
    if (errno != ENOENT) return ErrnoError(fmt::format("stat {}", d), errno);
    missing.push_back(d);
    d = Dirname(d);
  }
  for (auto it = missing.rbegin(); it != missing.rend(); ++it)
    if (::mkdir(it->c_str(), 0700) != 0 && errno != EEXIST)
      return ErrnoError(fmt::format("create directory {}", *it), errno);
  struct stat st;
  if (::stat(dir.c_str(), &st) != 0) return ErrnoError(fmt::format("stat {}", dir), errno);
  // The token is in there: only its owner should even list the directory.
  if ((st.st_mode & 077) != 0 && st.st_uid == ::geteuid() && ::chmod(dir.c_str(), 0700) != 0)
    return ErrnoError(fmt::format("chmod 0700 {}", dir), errno);
  return Status::Ok();
}

// Writes `text` to a new 0600 file beside `path` and renames it over `path`, so a reader sees
// the old file or the new one, never half of one.
Status ReplaceFile(const std::string& path, const std::string& text) {
  std::string tmp = Dirname(path) + "/.config.yaml.XXXXXX";
  int fd = ::mkstemp(tmp.data());  // mode 0600
  if (fd < 0) return ErrnoError(fmt::format("create a file in {}", Dirname(path)), errno);
  ScopeGuard remove_tmp([&] { ::unlink(tmp.c_str()); });
  ScopeGuard close_fd([&] { ::close(fd); });
  for (std::string_view rest = text; !rest.empty();) {
    ssize_t n = ::write(fd, rest.data(), rest.size());
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return ErrnoError(fmt::format("write {}", tmp), errno);
    rest.remove_prefix(static_cast<size_t>(n));
  }
  if (::fchmod(fd, 0600) != 0) return ErrnoError(fmt::format("chmod {}", tmp), errno);
  if (::fsync(fd) != 0) return ErrnoError(fmt::format("fsync {}", tmp), errno);
  close_fd.Cancel();
  if (::close(fd) != 0) return ErrnoError(fmt::format("close {}", tmp), errno);
  if (::rename(tmp.c_str(), path.c_str()) != 0)
    return ErrnoError(fmt::format("rename {} to {}", tmp, path), errno);
  remove_tmp.Cancel();
  return Status::Ok();
}

Result<bool> ParseInsecureEnv(const std::string& v) {
  std::string lower = ToLower(v);
  if (lower == "1" || lower == "true" || lower == "yes") return true;
  if (lower == "0" || lower == "false" || lower == "no") return false;
  return InvalidArgument(fmt::format("HUTCH_INSECURE='{}' must be 1 or 0", v));
}

}  // namespace

std::string ConfigFilePath() {
  if (auto xdg = NonEmptyEnv("XDG_CONFIG_HOME"); xdg && xdg->front() == '/')
    return *xdg + "/hutch/config.yaml";
  if (auto home = NonEmptyEnv("HOME")) return *home + "/.config/hutch/config.yaml";
  return "";
}

Result<ConfigFile> LoadConfigFile(const std::string& path) {
  if (path.empty()) return ConfigFile();
  ASSIGN_OR_RETURN(std::optional<std::string> text, ReadFileIfExists(path));
  if (!text) return ConfigFile();
  return ParseConfig(*text, path);
}

Result<ClientConfig> ResolveClientConfig(const ConfigFlags& flags) {
  ClientConfig out;
  auto take = [](const std::optional<std::string>& flag, std::string_view flag_name,
                 const char* env, std::string* value, std::string* source) {
    if (auto v = NonEmpty(flag)) {
      *value = *v;
      *source = flag_name;
    } else if (auto e = NonEmptyEnv(env)) {
      *value = *e;
      *source = env;
    }
  };
  take(flags.url, "--url", "HUTCH_URL", &out.url, &out.url_source);
  take(flags.token, "--token", "HUTCH_TOKEN", &out.token, &out.token_source);
  take(flags.ca_cert, "--ca-cert", "HUTCH_CA_CERT", &out.ca_cert, &out.ca_cert_source);
  if (flags.insecure) {
    out.insecure = true;
    out.insecure_source = "--insecure";
  } else if (auto e = NonEmptyEnv("HUTCH_INSECURE")) {
    ASSIGN_OR_RETURN(out.insecure, ParseInsecureEnv(*e));
    if (out.insecure) out.insecure_source = "HUTCH_INSECURE";
  }

  bool need_trust = out.ca_cert.empty() && !out.insecure;
  if (out.url.empty() || out.token.empty() || (need_trust && IsHttps(out.url))) {
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
    if (need_trust && NonEmpty(file.ca_cert)) {
      out.ca_cert =
          file.ca_cert->front() == '/' ? *file.ca_cert : Dirname(path) + "/" + *file.ca_cert;
      out.ca_cert_source = path;
    }
  }
  if (out.url.empty()) {
    out.url = kDefaultUrl;
    out.url_source = "default";
  }
  return out;
}

Result<ClientConfig> ResolveClientConfig(const std::optional<std::string>& flag_url,
                                         const std::optional<std::string>& flag_token) {
  ConfigFlags flags;
  flags.url = flag_url;
  flags.token = flag_token;
  return ResolveClientConfig(flags);
}

Status UpdateConfigFile(
    const std::string& path,
    const std::vector<std::pair<std::string, std::optional<std::string>>>& set) {
  if (path.empty())
    return InvalidArgument("no place for the config file: neither HOME nor XDG_CONFIG_HOME is set");
  for (const auto& [key, value] : set)
    if (!IsKnownKey(key)) return InvalidArgument(fmt::format("unknown config key '{}'", key));

  // Dotfile managers link the file from elsewhere; replacing the link would cut it off.
  std::string target = path;
  struct stat lst;
  if (::lstat(path.c_str(), &lst) == 0 && S_ISLNK(lst.st_mode)) {
    char* real = ::realpath(path.c_str(), nullptr);
    if (real == nullptr) return ErrnoError(fmt::format("follow the symlink {}", path), errno);
    target = real;
    std::free(real);
  }
  ASSIGN_OR_RETURN(std::optional<std::string> old_text, ReadFileIfExists(target));
  ConfigFile want;
  if (old_text) {
    auto old = ParseConfig(*old_text, path);
    if (!old.ok()) return old.status().WithContext("fix or remove the config file first; it says");
    want = *old;
  }
  for (const auto& [key, value] : set) *Field(want, key) = value;

  std::string text = EditConfigText(old_text.value_or(""), set);
  // The line editor knows block mappings only; anything it got wrong (a flow mapping, a
  // multi-line value) is written afresh, without the comments.
  auto edited = ParseConfig(text, path);
  if (!edited.ok() || edited->url != want.url || edited->token != want.token ||
      edited->ca_cert != want.ca_cert)
    text = WriteConfig(want);

  RETURN_IF_ERROR(MakePrivateDir(Dirname(path)));
  return ReplaceFile(target, text);
}

std::string MissingTokenHelp() {
  std::string path = ConfigFilePath();
  return fmt::format(
      "no API token: run `hutch login`, pass --token, set HUTCH_TOKEN, or put `token: …` in {}.\n"
      "The server writes its admin token to DATA_DIR/admin.token (default {}, readable by root):\n"
      "  export HUTCH_TOKEN=$(cat {})    # or $(sudo cat …)",
      path.empty() ? "~/.config/hutch/config.yaml" : path, kDefaultTokenFile, kDefaultTokenFile);
}

}  // namespace hutch::cli
