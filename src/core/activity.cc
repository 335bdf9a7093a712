#include "core/activity.h"

#include <algorithm>
#include <array>
#include <cctype>

namespace hutch::core {

namespace {

constexpr std::array<std::string_view, 8> kFamilies = {"session", "shell", "file",    "process",
                                                       "check",   "git",   "kubectl", "milestone"};

bool IsNameChar(char c) {
  return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_' || c == '-';
}

bool IsFamily(std::string_view family) {
  return std::find(kFamilies.begin(), kFamilies.end(), family) != kFamilies.end();
}

// The subcommands named in classifications; any other is "<program>.other".
constexpr std::array<std::string_view, 24> kGitVerbs = {
    "init",   "clone",    "add",    "commit",  "push",   "pull",        "fetch", "merge",
    "rebase", "checkout", "switch", "branch",  "status", "log",         "diff",  "reset",
    "stash",  "tag",      "remote", "restore", "revert", "cherry-pick", "rm",    "mv"};
constexpr std::array<std::string_view, 24> kKubectlVerbs = {
    "apply",    "create", "delete",  "get",    "describe",     "logs",    "exec",  "edit",
    "patch",    "scale",  "rollout", "expose", "port-forward", "run",     "set",   "label",
    "annotate", "config", "top",     "cp",     "wait",         "replace", "drain", "cordon"};

// git's global options that take the next word as their value.
constexpr std::array<std::string_view, 4> kGitValueOptions = {"-C", "-c", "--git-dir",
                                                              "--work-tree"};
constexpr std::array<std::string_view, 8> kKubectlValueOptions = {
    "-n", "--namespace", "--context", "--kubeconfig", "--cluster", "--user", "-s", "--server"};

template <size_t N>
bool In(const std::array<std::string_view, N>& table, std::string_view word) {
  return std::find(table.begin(), table.end(), word) != table.end();
}

// A command line split into simple commands (at ;, &, |, newlines and parentheses outside
// quotes), each a list of words with quotes removed.
std::vector<std::vector<std::string>> SplitCommands(std::string_view line) {
  std::vector<std::vector<std::string>> commands(1);
  std::string word;
  bool in_word = false;
  auto end_word = [&] {
    if (in_word) commands.back().push_back(word);
    word.clear();
    in_word = false;
  };
  auto end_command = [&] {
    end_word();
    if (!commands.back().empty()) commands.emplace_back();
  };
  for (size_t i = 0; i < line.size(); ++i) {
    char c = line[i];
    if (c == '\'') {
      in_word = true;
      size_t close = line.find('\'', i + 1);
      if (close == std::string_view::npos) close = line.size();
      word.append(line.substr(i + 1, close - i - 1));
      i = close;
    } else if (c == '"') {
      in_word = true;
      for (++i; i < line.size() && line[i] != '"'; ++i) {
        if (line[i] == '\\' && i + 1 < line.size()) ++i;
        word += line[i];
      }
    } else if (c == '\\' && i + 1 < line.size()) {
      in_word = true;
      word += line[++i];
    } else if (c == ' ' || c == '\t') {
      end_word();
    } else if (c == ';' || c == '&' || c == '|' || c == '\n' || c == '(' || c == ')' || c == '`') {
      end_command();
    } else {
      in_word = true;
      word += c;
    }
  }
  end_command();
  if (commands.back().empty()) commands.pop_back();
  return commands;
}

bool IsAssignment(std::string_view word) {
  size_t eq = word.find('=');
  if (eq == std::string_view::npos || eq == 0) return false;
  return std::all_of(word.begin(), word.begin() + static_cast<ptrdiff_t>(eq), [](char c) {
    return std::isalnum(static_cast<unsigned char>(c)) || c == '_';
  });
}

std::string_view BaseName(std::string_view path) {
  size_t slash = path.rfind('/');
  return slash == std::string_view::npos ? path : path.substr(slash + 1);
}

// The subcommand after the program's global options, or "" when there is none.
template <size_t N>
std::string_view Subcommand(const std::vector<std::string>& words, size_t i,
                            const std::array<std::string_view, N>& value_options) {
  for (; i < words.size(); ++i) {
    std::string_view w = words[i];
    if (w.empty() || w[0] != '-') return w;
    if (In(value_options, w)) ++i;  // its value is the next word
  }
  return "";
}

std::optional<std::string> Classify(const std::vector<std::string>& words) {
  size_t i = 0;
  // Wrappers that run the rest as a command.
  while (i < words.size()) {
    std::string_view w = words[i];
    if (IsAssignment(w) || w == "sudo" || w == "env" || w == "command" || w == "exec" ||
        w == "time" || w == "nohup") {
      ++i;
    } else if (w == "-E" || w == "--") {
      ++i;  // sudo -E, env --
    } else {
      break;
    }
  }
  if (i >= words.size()) return std::nullopt;
  std::string_view program = BaseName(words[i]);
  std::string_view verb;
  if (program == "git") {
    verb = Subcommand(words, i + 1, kGitValueOptions);
    if (verb.empty()) return std::nullopt;
    return "git." + std::string(In(kGitVerbs, verb) ? verb : "other");
  }
  if (program == "kubectl") {
    verb = Subcommand(words, i + 1, kKubectlValueOptions);
    if (verb.empty()) return std::nullopt;
    return "kubectl." + std::string(In(kKubectlVerbs, verb) ? verb : "other");
  }
  return std::nullopt;
}

std::string CsvField(std::string_view s) {
  if (s.find_first_of(",\"\r\n") == std::string_view::npos) return std::string(s);
  std::string out = "\"";
  for (char c : s) {
    if (c == '"') out += '"';
    out += c;
  }
  out += '"';
  return out;
}

}  // namespace

bool IsActivityType(std::string_view type) {
  if (type == kActivityExec) return true;
  if (type.size() > 64) return false;
  size_t dot = type.find('.');
  if (dot == std::string_view::npos || !IsFamily(type.substr(0, dot))) return false;
  std::string_view name = type.substr(dot + 1);
  return !name.empty() && std::all_of(name.begin(), name.end(), IsNameChar);
}

bool IsActivityTypePattern(std::string_view pattern) {
  if (pattern == kActivityExec || pattern == "exec.*" || IsFamily(pattern)) return true;
  if (pattern.ends_with(".*")) return IsFamily(pattern.substr(0, pattern.size() - 2));
  return IsActivityType(pattern);
}

bool ActivityTypeMatches(std::string_view pattern, std::string_view type) {
  if (pattern.ends_with(".*")) pattern.remove_suffix(2);
  if (pattern == type) return true;
  return type.size() > pattern.size() && type.starts_with(pattern) && type[pattern.size()] == '.';
}

std::vector<std::string> ClassifyCommandLine(std::string_view line) {
  std::vector<std::string> out;
  for (const auto& words : SplitCommands(line))
    if (auto type = Classify(words)) out.push_back(std::move(*type));
  return out;
}

std::optional<std::string> ActivityTypeForEvent(std::string_view event_type) {
  static constexpr std::array<std::pair<std::string_view, std::string_view>, 7> kMap = {{
      {"session.created", "session.created"},
      {"session.ready", "session.started"},
      {"session.stopped", "session.stopped"},
      {"session.paused", "session.paused"},
      {"session.resumed", "session.resumed"},
      {"session.error", "session.error"},
      {"session.terminated", "session.deleted"},
  }};
  for (const auto& [event, activity] : kMap)
    if (event == event_type) return std::string(activity);
  return std::nullopt;
}

std::string JoinArgv(const std::vector<std::string>& argv) {
  std::string out;
  for (const std::string& a : argv) {
    if (!out.empty()) out += ' ';
    bool plain = !a.empty() && std::all_of(a.begin(), a.end(), [](char c) {
      return std::isalnum(static_cast<unsigned char>(c)) ||
             std::string_view("-_./=:,@%+").find(c) != std::string_view::npos;
    });
    if (plain) {
      out += a;
      continue;
    }
    out += '\'';
    for (char c : a) {
      if (c == '\'')
        out += "'\\''";
      else
        out += c;
    }
    out += '\'';
  }
  return out;
}

std::string_view ShellHookPromptCommand() {
  return "__hutch_s=$?; __hutch_h=$(HISTTIMEFORMAT= builtin history 1); "
         "__hutch_n=${__hutch_h#\"${__hutch_h%%[![:space:]]*}\"}; "
         "__hutch_n=${__hutch_n%%[![:digit:]]*}; "
         "if [ -n \"${__hutch_seen+x}\" ] && [ -n \"$__hutch_n\" ] && "
         "[ \"$__hutch_n\" != \"$__hutch_seen\" ] && [ -x /run/hutch/bin/hutch-agent ]; then "
         "/run/hutch/bin/hutch-agent activity --exit-code \"$__hutch_s\" --cwd \"$PWD\" "
         "--history \"$__hutch_h\" 2>/dev/null; fi; "
         "__hutch_seen=$__hutch_n; (exit $__hutch_s)";
}

void AddShellHook(std::map<std::string, std::string>& env) {
  env.try_emplace("PROMPT_COMMAND", std::string(ShellHookPromptCommand()));
}

std::string ExecCommandLine(const std::vector<std::string>& argv) {
  if (argv.size() == 3 && (argv[0] == "/bin/sh" || argv[0] == "sh") && argv[1] == "-c")
    return argv[2];
  return JoinArgv(argv);
}

json::object ActivityToJson(const ActivityRecord& r) {
  json::object o;
  o["id"] = r.id;
  o["type"] = r.type;
  o["at"] = FormatTime(r.at);
  o["session"] = r.session_id;
  o["owner"] = r.owner;
  o["workshop"] = r.workshop_id.empty() ? json::value(nullptr) : json::value(r.workshop_id);
  o["participant"] = r.participant.empty() ? json::value(nullptr) : json::value(r.participant);
  o["actor"] = r.actor;
  o["command"] = r.command;
  o["exit_code"] = r.exit_code ? json::value(*r.exit_code) : json::value(nullptr);
  json::value data = json::object();
  if (auto parsed = ParseJsonObject(r.data_json); parsed.ok()) data = std::move(*parsed);
  o["data"] = std::move(data);
  return o;
}

std::string ActivityCsvHeader() {
  return "id,at,type,session,owner,workshop,participant,actor,command,exit_code,data\r\n";
}

std::string ActivityCsvRow(const ActivityRecord& r) {
  const std::string at = FormatTime(r.at);
  std::string line = std::to_string(r.id);
  for (std::string_view f :
       {std::string_view(at), std::string_view(r.type), std::string_view(r.session_id),
        std::string_view(r.owner), std::string_view(r.workshop_id), std::string_view(r.participant),
        std::string_view(r.actor), std::string_view(r.command)}) {
    line += ',';
    line += CsvField(f);
  }
  line += ',';
  if (r.exit_code) line += std::to_string(*r.exit_code);
  line += ',';
  line += CsvField(r.data_json);
  line += "\r\n";
  return line;
}

}  // namespace hutch::core
