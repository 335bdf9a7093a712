// `hutch serve`: the server's entry point.
#pragma once

#include <CLI/CLI.hpp>

namespace hutch::api {

// Adds the `serve` subcommand to `app`; its callback stores the exit code in *exit_code.
void AddServeCommand(CLI::App& app, int* exit_code);

}  // namespace hutch::api
