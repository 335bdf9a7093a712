// `hutch store migrate|check`: the store's schema, looked after without starting a server.
#pragma once

#include <CLI/CLI.hpp>

namespace hutch::api {

// Adds the `store` subcommand group to `app`; callbacks store the exit code in *exit_code.
void AddStoreCommand(CLI::App& app, int* exit_code);

}  // namespace hutch::api
