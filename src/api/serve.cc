#include "api/serve.h"
#include "api/port_access.h"

#include <signal.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <fstream>
#include <memory>
#include <optional>
#include <thread>

#include <fmt/format.h>

#include "api/account_handlers.h"
#include "api/agent_handlers.h"
#include "api/attach_handlers.h"
#include "api/audit_log.h"
#include "api/auth.h"
#include "api/config.h"
#include "api/console.h"
#include "api/e2b_control.h"
#include "api/e2b_envd.h"
#include "api/event_handlers.h"
#include "api/file_handlers.h"
#include "api/gate.h"
#include "api/gc_handlers.h"
#include "api/image_handlers.h"
#include "api/metrics_handlers.h"
#include "api/openapi.h"
#include "api/remix_handlers.h"
#include "api/scenario_handlers.h"
#include "api/server.h"
#include "api/service_handlers.h"
#include "api/session_handlers.h"
#include "api/stream_handlers.h"
#include "api/usage_handlers.h"
#include "api/webhook_handlers.h"
#include "api/workshop_handlers.h"
#include "common/log.h"
#include "controller/event_bus.h"
#include "controller/gc.h"
#include "controller/metering.h"
#include "controller/notice_mailer.h"
#include "controller/reconciler.h"
#include "controller/session_service.h"
#include "controller/webhooks.h"
#include "controller/workshops.h"
#include "core/event.h"
#include "drivers/driver.h"
#include "drivers/registry.h"
#include "store/registry.h"
#include "store/store.h"

namespace hutch::api {

namespace {

std::string DefaultAgentPath() {
  char buf[4096];
  ssize_t n = readlink("/proc/self/exe", buf, sizeof buf - 1);
  if (n <= 0) return "hutch-agent";
  std::string self(buf, static_cast<size_t>(n));
  return self.substr(0, self.rfind('/') + 1) + "hutch-agent";
}

// What this machine could give one session at most: asking for more is impossible (400).
core::ResourceCeiling HostCeiling(const std::string& data_dir) {
  core::ResourceCeiling c;
  c.max_cpus = static_cast<double>(std::thread::hardware_concurrency());
  long pages = sysconf(_SC_PHYS_PAGES), page_size = sysconf(_SC_PAGE_SIZE);
  if (pages > 0 && page_size > 0) c.max_memory_mb = int64_t{pages} * page_size / (1 << 20);
  struct statvfs vfs;
  if (statvfs(data_dir.c_str(), &vfs) == 0)
    c.max_disk_mb = static_cast<int64_t>(vfs.f_blocks * vfs.f_frsize / (1 << 20));
  return c;
}

Status MakeDataDir(const std::string& dir) {
  // mkdir -p, each level 0700: the data dir holds the database and the admin token.
  for (size_t pos = 1; pos != std::string::npos;) {
    pos = dir.find('/', pos + 1);
    std::string part = dir.substr(0, pos);
    if (mkdir(part.c_str(), 0700) != 0 && errno != EEXIST)
      return ErrnoError("mkdir " + part, errno);
  }
  return Status::Ok();
}

// Written after bind so scripts and tests that start the server on port 0 find its address.
Status WriteListenAddr(const std::string& data_dir, const std::string& addr) {
  std::string tmp = data_dir + "/listen.addr.tmp", final_path = data_dir + "/listen.addr";
  {
    std::ofstream f(tmp, std::ios::trunc);
    f << addr << "\n";
    if (!f) return ErrnoError("write " + tmp, errno);
  }
  if (rename(tmp.c_str(), final_path.c_str()) != 0) return ErrnoError("rename " + tmp, errno);
  return Status::Ok();
}

int RunServe(const ServerConfig& config) {
  log::Level level = log::Level::kInfo;
  log::ParseLevel(config.log_level, &level);
  log::SetLevel(level);
  // Writes to a dead agent's socket must be errors, not a signal that kills the server.
  signal(SIGPIPE, SIG_IGN);

  auto fail = [](const Status& st) {
    LOG_ERROR("{}", st.message());
    return 1;
  };
  if (geteuid() != 0)
    LOG_WARN(
        "hutch serve is not running as root: creating sandboxes will fail (namespaces, "
        "mounts and cgroups need root)");
  if (Status st = MakeDataDir(config.data_dir); !st.ok()) return fail(st);
  store::StoreOptions store_opts;
  store_opts.data_dir = config.data_dir;
  store_opts.pool_size = config.store_pool_size;
  Result<std::unique_ptr<store::Store>> store = store::OpenStore(config.store, store_opts);
  if (!store.ok()) return fail(store.status().WithContext("open the store"));

  drivers::DriverParams dparams;
  dparams.data_dir = config.data_dir;
  dparams.agent_path = config.agent_path.empty() ? DefaultAgentPath() : config.agent_path;
  dparams.nat.subnet = config.nat_subnet;
  dparams.nat.dns = config.nat_dns;
  dparams.nat.pool_size = config.nat_pool_size;
  dparams.nat.prewarm = true;
  dparams.default_disk_mb = config.default_resources.disk_mb;  // the size most sessions ask for
  Result<std::unique_ptr<drivers::Driver>> driver = drivers::NewDriver(config.driver, dparams);
  if (!driver.ok())
    return fail(driver.status().WithContext(fmt::format("start the {} driver", config.driver)));

  Authenticator auth(**store);
  const std::string token_path = config.data_dir + "/admin.token";
  bool created = false;
  if (Status st = auth.BootstrapAdminToken(token_path, &created); !st.ok())
    return fail(st.WithContext("create the admin token"));

  controller::ServiceOptions sopts;
  sopts.default_resources = config.default_resources;
  sopts.ceiling = HostCeiling(config.data_dir);
  sopts.max_exec_timeout_seconds = config.max_exec_timeout_seconds;
  sopts.default_quota = config.default_quota;
  sopts.capacity = config.capacity;
  sopts.pause_stops_clock = config.pause_stops_clock;
  sopts.max_lifetime_seconds = config.max_lifetime_seconds;
  sopts.keepalive_seconds = config.keepalive_seconds;
  sopts.expiry_warnings_seconds = config.expiry_warnings_seconds;
  sopts.prewarm_seconds = config.prewarm_seconds;
  sopts.persist_retention_seconds = config.persist_retention_seconds;

  Router router;
  ServerOptions server_opts;
  server_opts.listen = config.listen;
  server_opts.io_threads = config.io_threads;
  server_opts.blocking_threads = config.blocking_threads;
  server_opts.max_body_bytes = static_cast<size_t>(config.max_body_bytes);
  server_opts.tls_cert = config.tls_cert;
  server_opts.tls_key = config.tls_key;
  server_opts.proxy_base_domain = config.proxy_base_domain;
  // Events: the bus wakes event streams and the webhook dispatcher when events are committed.
  controller::EventBus bus(**store);
  Server* server_ptr = nullptr;
  store::Store& db = **store;
  // Notable actions that are not transitions (keepalive, extend, warnings) become events too.
  auto emit = [&db, &bus](const core::Session& s, std::string_view type, core::Reason reason,
                          const std::string& actor, const json::object& data) {
    core::Event e;
    e.at = Now();
    e.type = std::string(type);
    e.session_id = s.id;
    e.owner = s.owner;
    e.reason = std::string(core::ToString(reason));
    e.actor = actor;
    e.data_json = json::serialize(data);
    if (Status st = db.AppendEvent(e).status(); !st.ok())
      LOG_SESSION_WARN(s.id, "record event {}: {}", type, st.ToString());
    bus.Notify();
  };
  // Usage metering (docs/usage.md): made before the session service, whose sandbox starts and
  // ends it reads.
  controller::Meter meter(
      **store, **driver,
      controller::MeterOptions{std::chrono::seconds(config.metering_interval_seconds),
                               config.metering_bucket_seconds});
  controller::SessionService service(
      **store, **driver, sopts,
      [&server_ptr](std::function<void()> work) { server_ptr->PostBlocking(std::move(work)); },
      emit);
  service.OnCommitted([&bus] { bus.Notify(); });
  // A start is read soon, off the create's path; an end now, before the sandbox and its
  // counters go.
  service.OnSandboxEdge(
      [&meter](const core::Session& s, controller::SessionService::SandboxEdge edge) {
        if (edge == controller::SessionService::SandboxEdge::kUp)
          meter.SampleSoon(s);
        else
          meter.Sample(s);
      });
  service.ReconcileAtStart();
  controller::WorkshopService workshops(
      **store, service,
      [&server_ptr](std::function<void()> work) { server_ptr->PostBlocking(std::move(work)); },
      [&bus] { bus.Notify(); });
  workshops.Configure(controller::WorkshopOptions{config.public_url,
                                                  [] {
                                                    std::string secret = NewTokenValue();
                                                    return std::pair{secret, HashToken(secret)};
                                                  },
                                                  driver->get()});
  controller::TaskRunner tasks(**store);
  tasks.FailInterrupted();
  controller::ImageService images(**store, **driver, tasks);
  controller::WebhookOptions wopts;
  wopts.allow_private = config.webhooks.allow_private;
  wopts.workers = config.webhooks.workers;
  wopts.max_attempts = config.webhooks.max_attempts;
  controller::WebhookDispatcher dispatcher(**store, wopts,
                                           controller::NewHttpWebhookSender(wopts.allow_private));
  bus.AddListener([&dispatcher] { dispatcher.Notify(); });
  // Notices by email, where an SMTP server is configured (controller/notice_mailer.h).
  std::optional<controller::NoticeMailer> mailer;
  if (!config.smtp.host.empty()) {
    mailer.emplace(**store, controller::NoticeMailerOptions{},
                   [smtp = config.smtp](const controller::Mail& m) { return SendMail(smtp, m); });
    bus.AddListener([&mailer] { mailer->Notify(); });
  }

  AddSystemRoutes(router);
  AddOpenApiRoute(router);
  controller::AgentService agents(**store, service, [&bus] { bus.Notify(); });
  AddSessionRoutes(router, service, &agents);
  AddAgentRoutes(router,
                 AgentRouteDeps{agents, **store, bus, std::max(1, config.blocking_threads / 4)});
  AddRemixRoutes(router, service, agents);
  AddFileRoutes(router, service);
  AddImageRoutes(router, ImageRouteDeps{images, tasks});
  AddEventRoutes(router, EventDeps{**store, bus, std::max(1, config.blocking_threads / 2)});
  Result<std::string> port_url_key = LoadOrCreatePortUrlKey(config.data_dir + "/port-url.key");
  if (!port_url_key.ok()) return fail(port_url_key.status().WithContext("port URL key"));
  AddStreamRoutes(router, StreamDeps{service, std::max(1, config.blocking_threads / 4),
                                     *port_url_key, config.proxy_base_domain});
  AddServiceRoutes(router, ServiceDeps{service, config.proxy_base_domain});
  AddE2bControlRoutes(router, service, *port_url_key);
  std::function<void()> close_e2b_envd = AddE2bEnvdRoutes(router, service, *port_url_key);
  AddWebhookRoutes(router, WebhookRouteDeps{**store, config.webhooks.allow_private});
  controller::GarbageCollector gc(
      **store, **driver, [&service](const std::string& id) { return service.InFlight(id); });
  AddGcRoutes(router, gc);
  // Scenarios, courses and progress (controller/scenarios.h): a workshop may run one.
  controller::ScenarioService scenarios(**store, service, workshops, [&bus] { bus.Notify(); });
  WorkshopDeps workshop_deps{workshops, **store, config.public_url};
  workshop_deps.scenarios = &scenarios;
  AddWorkshopRoutes(router, workshop_deps);
  AddUsageRoutes(router,
                 UsageDeps{**store, workshops, config.rates, config.metering_bucket_seconds});
  AddScenarioRoutes(router, scenarios);
  AuditLog audit(**store, std::chrono::hours(24 * config.audit_retention_days));
  // Attached shells (docs/attach.md); a line entered in one is an audit record of its own.
  controller::AttachService attach(
      **store, **driver, service, config.data_dir,
      [&audit](const core::AttachSession& s, std::string command) {
        store::AuditRecord r;
        r.at = Now();
        r.user_id = s.owner;
        r.action = "attach.command";
        r.method = "WS";
        r.path = fmt::format("/v1/attach/{}/ws", s.id);
        r.object_type = "attach";
        r.object_id = s.id;
        r.object_owner = s.owner;
        r.detail = std::move(command);
        audit.Record(std::move(r));
      },
      controller::AttachOptions{config.attach.docker_host, config.attach.recording_retention_days});
  attach.ReconcileAtStart();
  AddAttachRoutes(router, AttachDeps{attach, service});
  AddAccountRoutes(router, AccountDeps{**store, auth, audit, config.default_quota});
  AddConsoleRoutes(router, ConsoleDeps{**store, auth, !config.tls_cert.empty()});
  RateLimiter limiter(config.rate_limit_per_second, config.rate_limit_burst);
  MetricsDeps metrics_deps{[&db, &driver]() -> Status {
    if (Status st = db.LatestEventId().status(); !st.ok())
      return st.WithContext("the store does not answer");
    if (Status st = (*driver)->ListSandboxes().status(); !st.ok())
      return st.WithContext("the driver does not answer");
    return Status::Ok();
  }};
  AddMetricsRoutes(router, metrics_deps);
  CollectSessionStates(db);
  Gate gate(router, auth, audit, limiter, **store);

  Server server(server_opts, gate);
  server_ptr = &server;
  Result<std::string> bound = server.Start();
  if (!bound.ok()) return fail(bound.status());
  controller::Reconciler reconciler(service, std::chrono::milliseconds(config.controller_tick_ms),
                                    std::chrono::seconds(config.orphan_sweep_seconds));
  reconciler.AddTick([&workshops] { workshops.Tick(); });
  reconciler.AddTick([&attach] { attach.Tick(); });
  reconciler.SetSweep([&gc] { gc.Sweep(); });
  reconciler.Start();
  meter.Start();
  agents.Start();
  dispatcher.Start();
  if (mailer) mailer->Start();
  // The token-less metrics listener: its own router and gate, with nothing but the three
  // read-only routes, so no other route is ever reachable without a token through it.
  Router metrics_router;
  AddPublicMetricsRoutes(metrics_router, metrics_deps);
  Gate metrics_gate(metrics_router, auth, audit, limiter, **store);
  std::optional<Server> metrics_server;
  if (!config.metrics_listen.empty()) {
    ServerOptions mopts;
    mopts.listen = config.metrics_listen;
    mopts.io_threads = 1;
    mopts.blocking_threads = 2;
    metrics_server.emplace(mopts, metrics_gate);
    Result<std::string> mbound = metrics_server->Start();
    if (!mbound.ok()) return fail(mbound.status().WithContext("metrics_listen"));
    LOG_INFO("metrics on http://{}/metrics (no token)", *mbound);
  }
  if (Status st = WriteListenAddr(config.data_dir, *bound); !st.ok()) return fail(st);

  LOG_INFO("hutch {} listening on http://{} (data dir {})", HUTCH_VERSION, *bound, config.data_dir);
  LOG_INFO("admin token {}in {} — export HUTCH_TOKEN=$(cat {})", created ? "created " : "",
           token_path, token_path);
  server.WaitForShutdownSignal();
  server.Stop();
  close_e2b_envd();
  if (metrics_server) metrics_server->Stop();
  dispatcher.Stop();  // attempts under way stay pending and are made again at the next start
  if (mailer) mailer->Stop();
  return 0;
}

}  // namespace

void AddServeCommand(CLI::App& app, int* exit_code) {
  auto* cmd = app.add_subcommand("serve", "Run the hutch server (API, controller, local driver)");
  auto config = std::make_shared<ServerConfig>();
  auto config_path = std::make_shared<std::string>();
  auto listen = std::make_shared<std::string>();
  auto data_dir = std::make_shared<std::string>();
  auto store_url = std::make_shared<std::string>();
  auto log_level = std::make_shared<std::string>();
  auto agent = std::make_shared<std::string>();
  auto driver = std::make_shared<std::string>();
  auto tls_cert = std::make_shared<std::string>();
  auto tls_key = std::make_shared<std::string>();
  cmd->add_option("--config", *config_path,
                  "YAML config file (default /etc/hutch/config.yaml if it exists)");
  cmd->add_option("--listen", *listen, "Address to listen on, HOST:PORT (default 127.0.0.1:7070)");
  cmd->add_option("--data-dir", *data_dir, "Data directory (default /var/lib/hutch)");
  cmd->add_option("--store", *store_url,
                  "Store URL: sqlite:///path/hutch.db or postgres://user@host:port/db?sslmode=… "
                  "(default SQLite in the data dir)");
  cmd->add_option("--log-level", *log_level, "debug | info | warn | error (default info)");
  cmd->add_option("--agent", *agent, "Path of hutch-agent (default: next to hutch)");
  cmd->add_option("--driver", *driver, "The driver that makes sandboxes (default local)");
  cmd->add_option("--tls-cert", *tls_cert, "Serve HTTPS with this PEM certificate chain");
  cmd->add_option("--tls-key", *tls_key, "The PEM private key of --tls-cert");
  cmd->footer(
      "Environment: HUTCH_LISTEN, HUTCH_DATA_DIR, HUTCH_STORE, HUTCH_LOG_LEVEL, HUTCH_AGENT_PATH,\n"
      "HUTCH_DRIVER, HUTCH_TLS_CERT, HUTCH_TLS_KEY, HUTCH_METRICS_LISTEN.\n"
      "Precedence: flags > environment > config file > defaults.\n"
      "Example: hutch serve --listen 127.0.0.1:7070 --data-dir /var/lib/hutch");
  cmd->callback([=] {
    ServerConfig c;
    bool required = !config_path->empty();
    std::string path = required ? *config_path : "/etc/hutch/config.yaml";
    if (Status st = LoadConfigFile(path, required, &c); !st.ok()) {
      std::fprintf(stderr, "error: %s\n", st.message().c_str());
      *exit_code = 2;
      return;
    }
    ApplyEnvironment(&c);
    if (!listen->empty()) c.listen = *listen;
    if (!data_dir->empty()) c.data_dir = *data_dir;
    if (!store_url->empty()) c.store = *store_url;
    if (!log_level->empty()) c.log_level = *log_level;
    if (!agent->empty()) c.agent_path = *agent;
    if (!driver->empty()) c.driver = *driver;
    if (!tls_cert->empty()) c.tls_cert = *tls_cert;
    if (!tls_key->empty()) c.tls_key = *tls_key;
    if (Status st = ValidateConfig(c); !st.ok()) {
      std::fprintf(stderr, "error: %s\n", st.message().c_str());
      *exit_code = 2;
      return;
    }
    *exit_code = RunServe(c);
  });
}

}  // namespace hutch::api
