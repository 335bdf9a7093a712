// The steps most resource commands share — list, show, create and delete (`hutch volume ls|get|rm`,
// `hutch image …`, `hutch checkpoint …`) — so that each command's file says only what is its own:
// its flags, its paths and how it prints.
#pragma once

#include <functional>
#include <string>
#include <string_view>
#include <vector>

#include "cli/commands.h"
#include "common/json.h"

namespace hutch::cli {

// How a command prints the server's objects: a table, or with -o json `{key: items}`.
using PrintItems = std::function<void(const Command& cmd, const json::array& items)>;

// GETs `target` and prints the array at `key` of the answer (none when it is absent) with
// `print`. On success *exit_code is kExitOk; on failure it is printed as Command::Fail does.
void ListAndPrint(Command& cmd, int* exit_code, const std::string& target, std::string_view key,
                  const PrintItems& print);

// One call that answers one object, printed by `print` as a list of one; *exit_code as above.
void CallAndPrint(Command& cmd, int* exit_code, std::string_view method, const std::string& target,
                  const PrintItems& print, const json::value& body = nullptr);

// When CallForEachId connects: once, before the first call (a bad config is printed once), or for
// each id (printed for each, after the id) — each command keeps the way it always had.
enum class Connection { kOnce, kPerId };

// Calls `method` on path(id) for each of `ids` and prints the answers as ForEachId does; answers
// the exit code.
int CallForEachId(Command& cmd, const std::vector<std::string>& ids, std::string_view json_key,
                  std::string_view method,
                  const std::function<std::string(const std::string& id)>& path,
                  Connection connection, const json::value& body = nullptr);

// `hutch KIND rm SESSION ITEM…` (checkpoints, services, terminals of one session): DELETEs
// path(session, item) for each item and prints the answers at `json_key` as CallForEachId does.
struct SessionItemsRm {
  std::string name;  // "service rm", for NewCommand
  std::string summary, example;
  std::string items_name, items_help;  // the positional: "NAME", "service names"
  std::string json_key;
  std::function<std::string(const std::string& session, const std::string& item)> path;
};
void AddSessionItemsRm(CLI::App& group, const Io& io, int* exit_code, SessionItemsRm spec);

// `hutch KIND apply -f FILE`: POSTs the document in `file` ('-' reads stdin) to `target` as
// written, so that the server's errors point at the file's own lines, and prints "KIND NAME
// created" (or "replaced"), or the answer with -o json. Sets *exit_code.
void ApplyDocument(Command& cmd, int* exit_code, const std::string& file, const std::string& target,
                   std::string_view kind);

}  // namespace hutch::cli
