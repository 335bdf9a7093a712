#include "api/store_command.h"

#include <cstdio>
#include <memory>
#include <string>

#include <fmt/format.h>

#include "api/config.h"
#include "common/log.h"
#include "store/migrations/migrations.h"
#include "store/registry.h"

namespace hutch::api {

namespace {

struct StoreFlags {
  std::string config_path;
  std::string data_dir;
  std::string store;
};

// The server's own view of which store it uses: config file, then HUTCH_*, then flags.
Result<ServerConfig> ResolveConfig(const StoreFlags& flags) {
  ServerConfig c;
  bool required = !flags.config_path.empty();
  std::string path = required ? flags.config_path : "/etc/hutch/config.yaml";
  RETURN_IF_ERROR(LoadConfigFile(path, required, &c));
  ApplyEnvironment(&c);
  if (!flags.data_dir.empty()) c.data_dir = flags.data_dir;
  if (!flags.store.empty()) c.store = flags.store;
  RETURN_IF_ERROR(ValidateConfig(c));
  return c;
}

void AddStoreFlags(CLI::App* cmd, StoreFlags* flags) {
  cmd->add_option("--config", flags->config_path,
                  "YAML config file (default /etc/hutch/config.yaml if it exists)");
  cmd->add_option("--data-dir", flags->data_dir,
                  "Data directory, where the default SQLite store lives (default /var/lib/hutch)");
  cmd->add_option("--store", flags->store,
                  "Store URL: sqlite:///path/hutch.db or postgres://user@host:port/db?sslmode=… "
                  "(default: the server's, from its config, HUTCH_STORE or SQLite in the data "
                  "dir)");
}

std::string Shown(const ServerConfig& c) {
  return c.store.empty() ? fmt::format("sqlite:{}/hutch.db", c.data_dir)
                         : store::RedactStoreUrl(c.store);
}

int Check(const StoreFlags& flags) {
  auto c = ResolveConfig(flags);
  if (!c.ok()) {
    std::fprintf(stderr, "error: %s\n", c.status().message().c_str());
    return 2;
  }
  store::StoreOptions options;
  options.data_dir = c->data_dir;
  options.pool_size = 1;
  options.migrate = false;
  auto opened = store::OpenStore(c->store, options);
  if (!opened.ok()) {
    std::fprintf(stderr, "error: %s\n", opened.status().message().c_str());
    return 2;
  }
  const int have = (*opened)->SchemaVersion(), want = store::LatestSchemaVersion();
  std::printf("store:          %s\nschema version: %d\nthis hutch:     %d\n", Shown(*c).c_str(),
              have, want);
  if (have < want) {
    std::printf("%d migration%s pending: run hutch store migrate (or start hutch serve)\n",
                want - have, want - have == 1 ? "" : "s");
    return 1;
  }
  std::printf("up to date\n");
  return 0;
}

int Migrate(const StoreFlags& flags) {
  auto c = ResolveConfig(flags);
  if (!c.ok()) {
    std::fprintf(stderr, "error: %s\n", c.status().message().c_str());
    return 2;
  }
  log::SetLevel(log::Level::kInfo);  // each migration says what it did
  store::StoreOptions options;
  options.data_dir = c->data_dir;
  options.pool_size = 1;
  auto opened = store::OpenStore(c->store, options);
  if (!opened.ok()) {
    std::fprintf(stderr, "error: %s\n", opened.status().message().c_str());
    return 2;
  }
  std::printf("store %s is at schema version %d\n", Shown(*c).c_str(), (*opened)->SchemaVersion());
  return 0;
}

}  // namespace

void AddStoreCommand(CLI::App& app, int* exit_code) {
  auto* group = app.add_subcommand("store", "Look after the server's store (its schema)");
  group->require_subcommand(1);
  group->footer(
      "The store is the one hutch serve uses: --store, else HUTCH_STORE, else `store:` in the\n"
      "config file, else SQLite at DATA_DIR/hutch.db.");

  auto check_flags = std::make_shared<StoreFlags>();
  auto* check = group->add_subcommand(
      "check", "Say which schema version the store has and whether migrations are pending");
  AddStoreFlags(check, check_flags.get());
  check->footer(
      "Changes nothing. Exit status: 0 up to date, 1 migrations pending, 2 unreachable,\n"
      "or newer than this hutch knows.\n"
      "Example: hutch store check --store postgres://hutch@db.example.org/hutch");
  check->callback([=] { *exit_code = Check(*check_flags); });

  auto migrate_flags = std::make_shared<StoreFlags>();
  auto* migrate = group->add_subcommand(
      "migrate", "Bring the store's schema to this hutch's version (hutch serve also does)");
  AddStoreFlags(migrate, migrate_flags.get());
  migrate->footer(
      "Runs the pending migrations, each in a transaction; several servers starting at once\n"
      "take turns. Refuses a store whose schema is newer than this hutch knows.\n"
      "Example: hutch store migrate --store postgres://hutch@db.example.org/hutch");
  migrate->callback([=] { *exit_code = Migrate(*migrate_flags); });
}

}  // namespace hutch::api
