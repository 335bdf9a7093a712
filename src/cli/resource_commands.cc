#include "cli/resource_commands.h"

#include <optional>

#include "cli/output.h"

namespace hutch::cli {

void ListAndPrint(Command& cmd, int* exit_code, const std::string& target, std::string_view key,
                  const PrintItems& print) {
  std::optional<json::object> answer = cmd.CallOrFail(exit_code, "GET", target);
  if (!answer) return;
  print(cmd, JsonArray(*answer, key));
  *exit_code = kExitOk;
}

void CallAndPrint(Command& cmd, int* exit_code, std::string_view method, const std::string& target,
                  const PrintItems& print, const json::value& body) {
  std::optional<json::object> answer = cmd.CallOrFail(exit_code, method, target, body);
  if (!answer) return;
  print(cmd, json::array{*answer});
  *exit_code = kExitOk;
}

int CallForEachId(Command& cmd, const std::vector<std::string>& ids, std::string_view json_key,
                  std::string_view method,
                  const std::function<std::string(const std::string& id)>& path,
                  Connection connection, const json::value& body) {
  std::optional<client::ApiClient> shared;
  if (connection == Connection::kOnce) {
    int exit_code = kExitOk;
    shared = cmd.ConnectOrFail(&exit_code);
    if (!shared) return exit_code;
  }
  return ForEachId(cmd, ids, json_key, [&](const std::string& id) -> Result<json::object> {
    if (shared) return shared->Call(method, path(id), body);
    auto api = cmd.Connect();
    if (!api.ok()) return api.status();
    return api->Call(method, path(id), body);
  });
}

}  // namespace hutch::cli
