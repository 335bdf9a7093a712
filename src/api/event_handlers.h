// GET /v1/events: the event log as pages, or as a Server-Sent Events stream that follows it.
#pragma once

#include "api/router.h"
#include "controller/event_bus.h"
#include "store/store.h"

namespace hutch::api {

struct EventDeps {
  store::Store& store;
  controller::EventBus& bus;
  // Streams open at once. A stream holds a blocking-pool thread while it waits for events (the
  // BodyStream contract), so they are capped below the pool's size; past the cap: 429.
  int max_streams = 32;
};

void AddEventRoutes(Router& router, EventDeps deps);

// How an event is written on the stream: "id: 42\nevent: session.ready\ndata: {…}\n\n".
std::string FormatSseEvent(const core::Event& event);

}  // namespace hutch::api
