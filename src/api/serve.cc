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
#include "api/activity_handlers.h"
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
#include "api/report_handlers.h"
#include "api/scenario_handlers.h"
#include "api/server.h"
#include "api/service_handlers.h"
#include "api/session_handlers.h"
#include "api/stream_handlers.h"
#include "api/usage_handlers.h"
#include "api/webhook_handlers.h"
#include "api/workshop_handlers.h"
#include "common/log.h"
#include "controller/activity_log.h"
#include "controller/event_bus.h"
#include "controller/gc.h"
#include "controller/live_processes.h"
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

int Fail(const Status& st) {
  LOG_ERROR("{}", st.message());
  return 1;
}

// The process-wide settings: log level, SIGPIPE, and a warning when not root.
void SetUpProcess(const ServerConfig& config) {
  log::Level level = log::Level::kInfo;
  log::ParseLevel(config.log_level, &level);
  log::SetLevel(level);
  // Writes to a dead agent's socket must be errors, not a signal that kills the server.
  signal(SIGPIPE, SIG_IGN);
  if (geteuid() != 0)
    LOG_WARN(
        "hutch serve is not running as root: creating sandboxes will fail (namespaces, "
        "mounts and cgroups need root)");
}

store::StoreOptions StoreOptionsFor(const ServerConfig& config) {
  store::StoreOptions o;
  o.data_dir = config.data_dir;
  o.pool_size = config.store_pool_size;
  return o;
}

drivers::DriverParams DriverParamsFor(const ServerConfig& config) {
  drivers::DriverParams p;
  p.data_dir = config.data_dir;
  p.agent_path = config.agent_path.empty() ? DefaultAgentPath() : config.agent_path;
  p.nat.subnet = config.nat_subnet;
  p.nat.dns = config.nat_dns;
  p.nat.pool_size = config.nat_pool_size;
  p.nat.prewarm = true;
  p.default_disk_mb = config.default_resources.disk_mb;  // the size most sessions ask for
  return p;
}

controller::ServiceOptions ServiceOptionsFor(const ServerConfig& config) {
  controller::ServiceOptions o;
  o.default_resources = config.default_resources;
  o.ceiling = HostCeiling(config.data_dir);
  o.max_exec_timeout_seconds = config.max_exec_timeout_seconds;
  o.default_quota = config.default_quota;
  o.capacity = config.capacity;
  o.pause_stops_clock = config.pause_stops_clock;
  o.max_lifetime_seconds = config.max_lifetime_seconds;
  o.keepalive_seconds = config.keepalive_seconds;
  o.expiry_warnings_seconds = config.expiry_warnings_seconds;
  o.prewarm_seconds = config.prewarm_seconds;
  o.persist_retention_seconds = config.persist_retention_seconds;
  return o;
}

ServerOptions ServerOptionsFor(const ServerConfig& config) {
  ServerOptions o;
  o.listen = config.listen;
  o.io_threads = config.io_threads;
  o.blocking_threads = config.blocking_threads;
  o.max_body_bytes = static_cast<size_t>(config.max_body_bytes);
  o.tls_cert = config.tls_cert;
  o.tls_key = config.tls_key;
  o.proxy_base_domain = config.proxy_base_domain;
  return o;
}

// Work posted to the server's blocking pool; the server exists by the time any is posted.
std::function<void(std::function<void()>)> PostToServer(Server*& server_ptr) {
  return [&server_ptr](std::function<void()> work) { server_ptr->PostBlocking(std::move(work)); };
}

// Notable actions that are not transitions (keepalive, extend, warnings) become events too.
controller::SessionService::EmitFn EventRecorder(store::Store& db, controller::EventBus& bus) {
  return [&db, &bus](const core::Session& s, std::string_view type, core::Reason reason,
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
}

// Commits wake the bus; a sandbox's start is metered soon, off the create's path, its end now,
// before the sandbox and its counters go.
// Activity lines written inside a sandbox are collected before it goes too.
void WireSessionService(controller::SessionService& service, controller::EventBus& bus,
                        controller::Meter& meter, controller::ActivityLog& activity) {
  service.OnCommitted([&bus] { bus.Notify(); });
  service.SetActivityLog(&activity);
  service.OnSandboxEdge(
      [&meter, &activity](const core::Session& s, controller::SessionService::SandboxEdge edge) {
        if (edge == controller::SessionService::SandboxEdge::kUp) {
          meter.SampleSoon(s);
        } else {
          meter.Sample(s);
          activity.Collect(s);
        }
      });
}

controller::WorkshopOptions WorkshopOptionsFor(const ServerConfig& config,
                                               drivers::Driver* driver) {
  return controller::WorkshopOptions{config.public_url,
                                     [] {
                                       std::string secret = NewTokenValue();
                                       return std::pair{secret, HashToken(secret)};
                                     },
                                     driver};
}

controller::WebhookOptions WebhookOptionsFor(const ServerConfig& config) {
  controller::WebhookOptions o;
  o.allow_private = config.webhooks.allow_private;
  o.workers = config.webhooks.workers;
  o.max_attempts = config.webhooks.max_attempts;
  return o;
}

// Notices by email, where an SMTP server is configured (controller/notice_mailer.h).
void MakeMailer(const ServerConfig& config, store::Store& db, controller::EventBus& bus,
                std::optional<controller::NoticeMailer>& mailer) {
  if (config.smtp.host.empty()) return;
  mailer.emplace(db, controller::NoticeMailerOptions{},
                 [smtp = config.smtp](const controller::Mail& m) { return SendMail(smtp, m); });
  bus.AddListener([&mailer] { mailer->Notify(); });
}

// What the session-side routes are made of.
struct SandboxParts {
  const ServerConfig& config;
  store::Store& db;
  controller::EventBus& bus;
  controller::SessionService& service;
  controller::AgentService& agents;
  controller::ImageService& images;
  controller::TaskRunner& tasks;
  std::shared_ptr<controller::LiveProcessTable> terminals;
};

// The routes on sessions and what runs in them, in the route table's order. Answers what closes
// the E2B envd routes at shutdown.
Result<std::function<void()>> AddSandboxRoutes(Router& router, const SandboxParts& p) {
  const ServerConfig& config = p.config;
  AddSessionRoutes(router, p.service, &p.agents);
  AddAgentRoutes(router,
                 AgentRouteDeps{p.agents, p.db, p.bus, std::max(1, config.blocking_threads / 4)});
  AddRemixRoutes(router, p.service, p.agents);
  AddFileRoutes(router, p.service);
  AddImageRoutes(router, ImageRouteDeps{p.images, p.tasks});
  AddEventRoutes(router, EventDeps{p.db, p.bus, std::max(1, config.blocking_threads / 2)});
  Result<std::string> port_url_key = LoadOrCreatePortUrlKey(config.data_dir + "/port-url.key");
  if (!port_url_key.ok()) return port_url_key.status().WithContext("port URL key");
  AddStreamRoutes(router, StreamDeps{p.service, std::max(1, config.blocking_threads / 4),
                                     *port_url_key, config.proxy_base_domain, p.terminals,
                                     config.terminals.detached_idle_seconds});
  AddServiceRoutes(router, ServiceDeps{p.service, config.proxy_base_domain});
  AddE2bControlRoutes(router, p.service, *port_url_key);
  std::function<void()> close_e2b_envd = AddE2bEnvdRoutes(router, p.service, *port_url_key);
  AddWebhookRoutes(router, WebhookRouteDeps{p.db, config.webhooks.allow_private});
  return close_e2b_envd;
}

// A line entered in an attached shell (docs/attach.md) is an audit record of its own.
controller::AttachService::CommandFn AttachAuditor(AuditLog& audit) {
  return [&audit](const core::AttachSession& s, std::string command) {
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
  };
}

// The detachable terminals (controller/live_processes.h) with the configured scrollback.
std::shared_ptr<controller::LiveProcessTable> NewTerminalTable(
    const ServerConfig& config, controller::SessionService& service) {
  controller::LiveProcessTable::Options o;
  o.service = &service;
  o.scrollback_bytes = static_cast<size_t>(config.terminals.scrollback_bytes);
  o.max_per_session = static_cast<size_t>(config.terminals.max_per_session);
  return std::make_shared<controller::LiveProcessTable>(o);
}

// The reconciler's tick that ends the terminals nobody attached to for
// terminals.detached_idle_seconds, each in the audit trail (the server ends them, no request).
std::function<void()> TerminalReaper(controller::LiveProcessTable& terminals, AuditLog& audit,
                                     int64_t detached_idle_seconds) {
  return [&terminals, &audit, detached_idle_seconds] {
    for (const auto& t : terminals.EndDetached(std::chrono::seconds(detached_idle_seconds))) {
      store::AuditRecord r;
      r.at = Now();
      r.action = "sessions.terminals.ended";
      r.method = "DELETE";
      r.path = fmt::format("/v1/sessions/{}/terminals/{}", t->session_id(), t->options().id);
      r.object_type = "session";
      r.object_id = t->session_id();
      r.object_owner = t->session_owner();
      r.status = 200;
      r.detail =
          fmt::format("{}: nobody attached for {} s", t->options().id, detached_idle_seconds);
      audit.Record(std::move(r));
    }
  };
}

// /readyz: the store and the driver answer.
MetricsDeps ReadinessOf(store::Store& db, drivers::Driver& driver) {
  return MetricsDeps{[&db, &driver]() -> Status {
    if (Status st = db.LatestEventId().status(); !st.ok())
      return st.WithContext("the store does not answer");
    if (Status st = driver.ListSandboxes().status(); !st.ok())
      return st.WithContext("the driver does not answer");
    return Status::Ok();
  }};
}

// The token-less metrics listener, where config.metrics_listen names one.
Status StartMetricsServer(const ServerConfig& config, Gate& metrics_gate,
                          std::optional<Server>& metrics_server) {
  if (config.metrics_listen.empty()) return Status::Ok();
  ServerOptions mopts;
  mopts.listen = config.metrics_listen;
  mopts.io_threads = 1;
  mopts.blocking_threads = 2;
  metrics_server.emplace(mopts, metrics_gate);
  Result<std::string> mbound = metrics_server->Start();
  if (!mbound.ok()) return mbound.status().WithContext("metrics_listen");
  LOG_INFO("metrics on http://{}/metrics (no token)", *mbound);
  return Status::Ok();
}

void LogListening(const ServerConfig& config, const std::string& bound,
                  const std::string& token_path, bool created) {
  LOG_INFO("hutch {} listening on http://{} (data dir {})", HUTCH_VERSION, bound, config.data_dir);
  LOG_INFO("admin token {}in {} — export HUTCH_TOKEN=$(cat {})", created ? "created " : "",
           token_path, token_path);
}

// The store and the driver, opened in the data dir (made first).
struct Backends {
  std::unique_ptr<store::Store> store;
  std::unique_ptr<drivers::Driver> driver;
};

Result<Backends> OpenBackends(const ServerConfig& config) {
  RETURN_IF_ERROR(MakeDataDir(config.data_dir));
  Backends b;
  Result<std::unique_ptr<store::Store>> store =
      store::OpenStore(config.store, StoreOptionsFor(config));
  if (!store.ok()) return store.status().WithContext("open the store");
  b.store = std::move(*store);
  Result<std::unique_ptr<drivers::Driver>> driver =
      drivers::NewDriver(config.driver, DriverParamsFor(config));
  if (!driver.ok())
    return driver.status().WithContext(fmt::format("start the {} driver", config.driver));
  b.driver = std::move(*driver);
  return b;
}

// The background work that runs while the server takes requests.
struct Workers {
  controller::Reconciler& reconciler;
  controller::Meter& meter;
  controller::ActivityLog& activity;
  controller::AgentService& agents;
  controller::WebhookDispatcher& dispatcher;
  std::optional<controller::NoticeMailer>& mailer;
};

void StartWorkers(const Workers& w) {
  w.reconciler.Start();
  w.meter.Start();
  w.activity.Start();
  w.agents.Start();
  w.dispatcher.Start();
  if (w.mailer) w.mailer->Start();
}

// After the servers: the rest stop with their objects.
void StopWorkers(const Workers& w) {
  w.dispatcher.Stop();  // attempts under way stay pending and are made again at the next start
  if (w.mailer) w.mailer->Stop();
}

int RunServe(const ServerConfig& config) {
  SetUpProcess(config);
  Result<Backends> backends = OpenBackends(config);
  if (!backends.ok()) return Fail(backends.status());
  store::Store& db = *backends->store;
  drivers::Driver& driver = *backends->driver;

  Authenticator auth(db);
  const std::string token_path = config.data_dir + "/admin.token";
  bool created = false;
  if (Status st = auth.BootstrapAdminToken(token_path, &created); !st.ok())
    return Fail(st.WithContext("create the admin token"));

  controller::ServiceOptions sopts = ServiceOptionsFor(config);
  Router router;
  ServerOptions server_opts = ServerOptionsFor(config);
  // Events: the bus wakes event streams and the webhook dispatcher when events are committed.
  controller::EventBus bus(db);
  Server* server_ptr = nullptr;
  // Usage metering (docs/usage.md): made before the session service, whose sandbox starts and
  // ends it reads.
  controller::Meter meter(
      db, driver,
      controller::MeterOptions{std::chrono::seconds(config.metering_interval_seconds),
                               config.metering_bucket_seconds});
  // Activity (docs/workshops.md): records what is done in sessions, and collects the lines
  // written inside them.
  controller::ActivityLog activity(
      db, driver,
      controller::ActivityOptions{std::chrono::milliseconds(config.activity_interval_ms), 30,
                                  config.activity_retention_days});
  controller::SessionService service(db, driver, sopts, PostToServer(server_ptr),
                                     EventRecorder(db, bus));
  WireSessionService(service, bus, meter, activity);
  service.ReconcileAtStart();
  controller::WorkshopService workshops(db, service, PostToServer(server_ptr),
                                        [&bus] { bus.Notify(); });
  workshops.Configure(WorkshopOptionsFor(config, &driver));
  controller::TaskRunner tasks(db);
  tasks.FailInterrupted();
  controller::ImageService images(db, driver, tasks);
  controller::WebhookOptions wopts = WebhookOptionsFor(config);
  controller::WebhookDispatcher dispatcher(db, wopts,
                                           controller::NewHttpWebhookSender(wopts.allow_private));
  bus.AddListener([&dispatcher] { dispatcher.Notify(); });
  std::optional<controller::NoticeMailer> mailer;
  MakeMailer(config, db, bus, mailer);

  AddSystemRoutes(router);
  AddOpenApiRoute(router);
  controller::AgentService agents(db, service, [&bus] { bus.Notify(); });
  std::shared_ptr<controller::LiveProcessTable> terminals = NewTerminalTable(config, service);
  Result<std::function<void()>> close_e2b_envd = AddSandboxRoutes(
      router, SandboxParts{config, db, bus, service, agents, images, tasks, terminals});
  if (!close_e2b_envd.ok()) return Fail(close_e2b_envd.status());
  controller::GarbageCollector gc(
      db, driver, [&service](const std::string& id) { return service.InFlight(id); });
  AddGcRoutes(router, gc);
  // Scenarios, courses and progress (controller/scenarios.h): a workshop may run one.
  controller::ScenarioService scenarios(db, service, workshops, [&bus] { bus.Notify(); });
  WorkshopDeps workshop_deps{workshops, db, config.public_url};
  workshop_deps.scenarios = &scenarios;
  AddWorkshopRoutes(router, workshop_deps);
  AddUsageRoutes(router, UsageDeps{db, workshops, config.rates, config.metering_bucket_seconds});
  AddActivityRoutes(router, ActivityDeps{db, workshops, activity});
  AddReportRoutes(router, ReportDeps{db, config.abuse_cpu_full_seconds});
  AddScenarioRoutes(router, scenarios);
  AuditLog audit(db, std::chrono::hours(24 * config.audit_retention_days));
  controller::AttachService attach(
      db, driver, service, config.data_dir, AttachAuditor(audit),
      controller::AttachOptions{config.attach.docker_host, config.attach.recording_retention_days});
  attach.ReconcileAtStart();
  AddAttachRoutes(router, AttachDeps{attach, service});
  AddAccountRoutes(router, AccountDeps{db, auth, audit, config.default_quota});
  AddConsoleRoutes(router, ConsoleDeps{db, auth, !config.tls_cert.empty()});
  RateLimiter limiter(config.rate_limit_per_second, config.rate_limit_burst);
  MetricsDeps metrics_deps = ReadinessOf(db, driver);
  AddMetricsRoutes(router, metrics_deps);
  CollectSessionStates(db);
  Gate gate(router, auth, audit, limiter, db);

  Server server(server_opts, gate);
  server_ptr = &server;
  Result<std::string> bound = server.Start();
  if (!bound.ok()) return Fail(bound.status());
  controller::Reconciler reconciler(service, std::chrono::milliseconds(config.controller_tick_ms),
                                    std::chrono::seconds(config.orphan_sweep_seconds));
  reconciler.AddTick([&workshops] { workshops.Tick(); });
  reconciler.AddTick([&attach] { attach.Tick(); });
  reconciler.AddTick(TerminalReaper(*terminals, audit, config.terminals.detached_idle_seconds));
  reconciler.SetSweep([&gc] { gc.Sweep(); });
  Workers workers{reconciler, meter, activity, agents, dispatcher, mailer};
  StartWorkers(workers);
  // The token-less metrics listener: its own router and gate, with nothing but the three
  // read-only routes, so no other route is ever reachable without a token through it.
  Router metrics_router;
  AddPublicMetricsRoutes(metrics_router, metrics_deps);
  Gate metrics_gate(metrics_router, auth, audit, limiter, db);
  std::optional<Server> metrics_server;
  if (Status st = StartMetricsServer(config, metrics_gate, metrics_server); !st.ok())
    return Fail(st);
  if (Status st = WriteListenAddr(config.data_dir, *bound); !st.ok()) return Fail(st);

  LogListening(config, *bound, token_path, created);
  server.WaitForShutdownSignal();
  server.Stop();
  (*close_e2b_envd)();
  terminals->Clear();
  if (metrics_server) metrics_server->Stop();
  StopWorkers(workers);
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
