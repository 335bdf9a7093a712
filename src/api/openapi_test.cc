// Every route the server has is described in docs/openapi.yaml, and every path there is served.
#include "api/openapi.h"
#include "api/activity_handlers.h"

#include <gtest/gtest.h>
#include <stdlib.h>
#include <unistd.h>

#include <set>

#include "api/account_handlers.h"
#include "api/activity_handlers.h"
#include "api/agent_handlers.h"
#include "api/attach_handlers.h"
#include "api/console.h"
#include "api/e2b_control.h"
#include "api/e2b_envd.h"
#include "api/event_handlers.h"
#include "api/file_handlers.h"
#include "api/gc_handlers.h"
#include "api/image_handlers.h"
#include "api/metrics_handlers.h"
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
#include "controller/event_bus.h"
#include "controller/live_processes.h"
#include "controller/session_service.h"
#include "drivers/testing/fake_driver.h"
#include "store/sqlite/sqlite_store.h"
#include "store/store.h"

namespace hutch::api {
namespace {

// The route table needs a driver to exist, never to act.
using drivers::testing::FakeDriver;

TEST(OpenApiTest, DocumentParsesAndMatchesTheRouter) {
  auto doc = OpenApiJson();
  ASSERT_TRUE(doc.ok()) << doc.status().ToString();
  const json::object& paths = doc->at("paths").as_object();

  char tmpl[] = "/tmp/hutch-openapi-XXXXXX";
  ASSERT_TRUE(mkdtemp(tmpl));
  std::string db = std::string(tmpl) + "/hutch.db";
  auto store = store::OpenSqliteStore(db);
  ASSERT_TRUE(store.ok()) << store.status().ToString();
  FakeDriver driver;
  controller::SessionService service(**store, driver, {}, [](std::function<void()>) {});
  Router router;
  AddSystemRoutes(router);
  AddOpenApiRoute(router);
  AddSessionRoutes(router, service);
  AddFileRoutes(router, service);
  controller::TaskRunner tasks(**store);
  controller::ImageService images(**store, driver, tasks);
  AddImageRoutes(router, ImageRouteDeps{images, tasks});
  controller::EventBus bus(**store);
  AddEventRoutes(router, EventDeps{**store, bus});
  StreamDeps stream_deps{service};
  stream_deps.terminals = std::make_shared<controller::LiveProcessTable>();
  AddStreamRoutes(router, stream_deps);
  AddServiceRoutes(router, ServiceDeps{service});
  AddWebhookRoutes(router, WebhookRouteDeps{**store});
  AddMetricsRoutes(router, MetricsDeps{});
  controller::WorkshopService workshops(
      **store, service, [](std::function<void()>) {}, nullptr);
  AddWorkshopRoutes(router, WorkshopDeps{workshops, **store, ""});
  AddUsageRoutes(router, UsageDeps{**store, workshops, {}, 3600});
  controller::ActivityLog activity(**store, driver, {});
  AddActivityRoutes(router, ActivityDeps{**store, workshops, activity});
  AddReportRoutes(router, ReportDeps{**store, 600});
  controller::ScenarioService scenarios(**store, service, workshops, nullptr);
  AddScenarioRoutes(router, scenarios);
  controller::AgentService agents(**store, service, [] {});
  AddAgentRoutes(router, AgentRouteDeps{agents, **store, bus});
  AddRemixRoutes(router, service, agents);
  Authenticator auth(**store);
  {
    AuditLog audit(**store, std::chrono::hours(0));
    AddAccountRoutes(router, AccountDeps{**store, auth, audit, {}});
  }
  AddConsoleRoutes(router, ConsoleDeps{**store, auth});
  AddE2bControlRoutes(router, service, "key");
  AddE2bEnvdRoutes(router, service, "key");
  controller::AttachService attach(**store, driver, service, tmpl, nullptr);
  AddAttachRoutes(router, AttachDeps{attach, service});
  controller::GarbageCollector gc(**store, driver, [](const std::string&) { return false; });
  AddGcRoutes(router, gc);

  std::set<std::string> routed;
  for (const Route& r : router.routes()) {
    std::string method = r.method;
    for (char& c : method) c = static_cast<char>(std::tolower(c));
    routed.insert(method + " " + r.pattern);
    auto it = paths.find(r.pattern);
    ASSERT_NE(it, paths.end()) << r.pattern << " is served but not in docs/openapi.yaml";
    ASSERT_TRUE(it->value().as_object().contains(method))
        << r.method << " " << r.pattern << " is served but not in docs/openapi.yaml";
    // The documented scope is the one the gate enforces.
    const json::object& op = it->value().at(method).as_object();
    std::string documented;
    if (auto s = op.find("x-hutch-scope"); s != op.end()) documented = s->value().as_string();
    EXPECT_EQ(documented, r.spec.scope) << r.method << " " << r.pattern;
    bool admin = op.contains("x-hutch-admin") && op.at("x-hutch-admin").as_bool();
    EXPECT_EQ(admin, r.spec.admin_only) << r.method << " " << r.pattern;
  }
  for (const auto& p : paths) {
    for (const auto& m : p.value().as_object()) {
      if (m.key() == "parameters") continue;
      std::string key = std::string(m.key()) + " " + std::string(p.key());
      EXPECT_TRUE(routed.count(key)) << key << " is in docs/openapi.yaml but not served";
    }
  }
  store->reset();
  for (const char* suffix : {"", "-wal", "-shm"}) unlink((db + suffix).c_str());
  rmdir(tmpl);
}

TEST(OpenApiTest, QuotedScalarsStayStrings) {
  auto doc = OpenApiJson();
  ASSERT_TRUE(doc.ok());
  // Response codes are quoted in the YAML ("200") and must be keys, version a string.
  EXPECT_TRUE(doc->at("info").at("version").is_string());
  EXPECT_TRUE(
      doc->at("paths").at("/healthz").at("get").at("responses").as_object().contains("200"));
}

}  // namespace
}  // namespace hutch::api
