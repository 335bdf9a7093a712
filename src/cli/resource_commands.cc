#include "cli/resource_commands.h"

#include <memory>
#include <optional>

#include <fmt/format.h>
#include <CLI/CLI.hpp>

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

void ApplyDocument(Command& cmd, int* exit_code, const std::string& file, const std::string& target,
                   std::string_view kind) {
  auto text = ReadFileArg(cmd, file, "-f");
  if (!text.ok()) {
    *exit_code = text.status().code() == Code::kInvalidArgument ? cmd.UsageError(text.status())
                                                                : cmd.Fail(text.status());
    return;
  }
  auto api = cmd.ConnectOrFail(exit_code);
  if (!api) return;
  auto res = api->http().Request("POST", target, *text, "application/yaml");
  Status st = res.ok() ? client::StatusFromResponse(*res) : res.status();
  if (!st.ok()) {
    *exit_code = cmd.Fail(st.WithContext(file));
    return;
  }
  auto parsed = ParseJsonObject(res->body);
  if (!parsed.ok()) {
    *exit_code = cmd.Fail(parsed.status());
    return;
  }
  if (cmd.flags.json())
    *cmd.io.out << PrettyJson(*parsed);
  else
    *cmd.io.out << fmt::format("{} {} {}\n", kind,
                               JsonString(JsonObject(*parsed, "metadata"), "name"),
                               res->status == 201 ? "created" : "replaced");
  *exit_code = kExitOk;
}

void AddSessionItemsRm(CLI::App& group, const Io& io, int* exit_code, SessionItemsRm spec) {
  auto cmd = NewCommand(io, spec.name);
  auto id = std::make_shared<std::string>();
  auto items = std::make_shared<std::vector<std::string>>();
  CLI::App* sub = AddCommand(group, "rm", spec.summary, spec.example);
  sub->add_option("ID", *id, "session id or name")->required();
  sub->add_option(spec.items_name, *items, spec.items_help)->required();
  AddGlobalFlags(sub, &cmd->flags);
  sub->callback([cmd, id, items, exit_code, spec = std::move(spec)] {
    *exit_code = CallForEachId(
        *cmd, *items, spec.json_key, "DELETE",
        [&](const std::string& item) { return spec.path(*id, item); }, Connection::kOnce);
  });
}

}  // namespace hutch::cli
