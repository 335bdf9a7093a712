/** A connection to a server: sessions, templates, volumes, events, tasks. */
import type { components } from "./schema.js";
import {
  type CreateSessionBody,
  EventStream,
  type ListSessionsOptions,
  Session,
  type SessionInfo,
} from "./session.js";
import { type ConnectionOptions, resolveConfig, Transport } from "./transport.js";

type S = components["schemas"];
export type TemplateInfo = S["Template"];
export type VolumeInfo = S["Volume"];
export type EventInfo = S["Event"];
export type TaskInfo = S["Task"];

const q = encodeURIComponent;

export interface EventFilter {
  /** A session id or name. */
  session?: string;
  type?: string | string[];
  /** RFC 3339: events at or after it. */
  since?: string;
  /** An event id: only later ones. */
  after?: number;
}

function eventQuery(f: EventFilter & { limit?: number }) {
  return {
    session: f.session,
    type: Array.isArray(f.type) ? f.type.join(",") : f.type,
    since: f.since,
    after: f.after,
    limit: f.limit,
  };
}

/** `/v1/templates`: `kind: SessionTemplate` documents, as YAML text or an object. */
export class Templates {
  constructor(private readonly t: Transport) {}
  apply(document: string | Record<string, unknown>): Promise<TemplateInfo> {
    return typeof document === "string"
      ? this.t.request("POST", "/v1/templates", {
          body: document,
          headers: { "Content-Type": "application/yaml" },
        })
      : this.t.request("POST", "/v1/templates", { json: document });
  }
  async list(): Promise<TemplateInfo[]> {
    return (await this.t.request("GET", "/v1/templates")).templates;
  }
  get(name: string): Promise<TemplateInfo> {
    return this.t.request("GET", `/v1/templates/${q(name)}`);
  }
  delete(name: string): Promise<{ deleted: string }> {
    return this.t.request("DELETE", `/v1/templates/${q(name)}`);
  }
}

export class Volumes {
  constructor(private readonly t: Transport) {}
  create(name: string, o: { sizeMb?: number } = {}): Promise<VolumeInfo> {
    return this.t.request("POST", "/v1/volumes", {
      json: o.sizeMb === undefined ? { name } : { name, size_mb: o.sizeMb },
    });
  }
  async list(): Promise<VolumeInfo[]> {
    return (await this.t.request("GET", "/v1/volumes")).volumes;
  }
  get(name: string): Promise<VolumeInfo> {
    return this.t.request("GET", `/v1/volumes/${q(name)}`);
  }
  delete(name: string): Promise<{ deleted: string }> {
    return this.t.request("DELETE", `/v1/volumes/${q(name)}`);
  }
}

export class Events {
  constructor(private readonly t: Transport) {}
  /** One page, oldest first (pass the last id as `after` for the next). */
  async list(f: EventFilter & { limit?: number } = {}): Promise<EventInfo[]> {
    return (await this.t.request("GET", "/v1/events", { query: eventQuery(f) })).events;
  }
  /** Follows the log (SSE) from after `after`/`lastEventId`, else `since`, else the next event. */
  stream(
    f: EventFilter & { lastEventId?: string; timeoutMs?: number } = {},
  ): Promise<EventStream<EventInfo>> {
    const headers = f.lastEventId ? { "Last-Event-ID": f.lastEventId } : undefined;
    return EventStream.open<EventInfo>(this.t, "/v1/events", eventQuery(f), {
      headers,
      timeoutMs: f.timeoutMs,
    });
  }
}

export class Tasks {
  constructor(private readonly t: Transport) {}
  get(id: string): Promise<TaskInfo> {
    return this.t.request("GET", `/v1/tasks/${q(id)}`);
  }
}

export class Client {
  readonly t: Transport;
  readonly templates: Templates;
  readonly volumes: Volumes;
  readonly events: Events;
  readonly tasks: Tasks;

  constructor(o: ConnectionOptions = {}) {
    this.t = new Transport(resolveConfig(o));
    this.templates = new Templates(this.t);
    this.volumes = new Volumes(this.t);
    this.events = new Events(this.t);
    this.tasks = new Tasks(this.t);
  }

  createSession(body: CreateSessionBody = {}): Promise<Session> {
    return Session.createWith(this.t, body);
  }
  getSession(idOrName: string): Promise<Session> {
    return Session.connectWith(this.t, idOrName);
  }
  listSessions(f: ListSessionsOptions = {}): Promise<SessionInfo[]> {
    return Session.listWith(this.t, f);
  }
  me(): Promise<S["Me"]> {
    return this.t.request("GET", "/v1/me");
  }
  version(): Promise<S["Version"]> {
    return this.t.request("GET", "/v1/version");
  }
}
