// hutch: the server (`hutch serve`) and the CLI in one executable.
#include <CLI/CLI.hpp>

#include "api/serve.h"
#include "api/store_command.h"
#include "cli/cli.h"

int main(int argc, char** argv) {
  CLI::App app{"hutch — self-hosted sessions: isolated, time-bound compute environments"};
  app.require_subcommand(1);
  app.footer(
      "Quick start: `hutch serve` as root, then `hutch create`, `hutch exec ID -- CMD`.\n"
      "Run `hutch COMMAND --help` for a command's options.");
  int exit_code = 0;
  hutch::api::AddServeCommand(app, &exit_code);
  hutch::api::AddStoreCommand(app, &exit_code);
  hutch::cli::AddClientCommands(app, &exit_code);
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    int rc = app.exit(e);
    return rc == 0 ? 0 : 2;
  }
  return exit_code;
}
