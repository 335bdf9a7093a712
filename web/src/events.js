import { withOwner } from "./api.js";

// Following /v1/events as Server-Sent Events. EventSource sends the console's cookie (same
// origin) and reconnects by itself with Last-Event-ID, so nothing is missed across a blip.
export function followEvents(params, onEvent, onState) {
  const q = new URLSearchParams({ stream: "true", ...params });
  const source = new EventSource(withOwner(`/v1/events?${q}`));
  const handle = (msg) => {
    try { onEvent(JSON.parse(msg.data)); } catch { /* a comment or partial line */ }
  };
  source.onmessage = handle;
  // Every event has a named type (session.ready …); EventSource needs a listener per name, so
  // listen to the ones the console shows and let the rest reach onmessage if unnamed.
  for (const type of EVENT_TYPES) source.addEventListener(type, handle);
  source.onopen = () => onState?.("live");
  source.onerror = () => onState?.(source.readyState === EventSource.CLOSED ? "closed" : "reconnecting");
  return () => source.close();
}

const EVENT_TYPES = [
  "session.created", "session.scheduled", "session.pending", "session.provisioning",
  "session.ready", "session.running", "session.paused", "session.resumed", "session.stopping",
  "session.stopped", "session.terminating", "session.terminated", "session.error",
  "session.cancelled", "session.extended", "session.keepalive", "session.idle_warning",
  "session.expiring", "session.updated", "session.resized", "session.forked", "session.commit",
  "session.checkpoint_created", "session.checkpoint_deleted", "session.checkpoint_restored",
];
