/**
 * HTTP plumbing: Node's fetch with the bearer token, typed errors, explicit timeouts and
 * retries of idempotent calls, Server-Sent Events (parsed by eventsource-parser).
 */
import { createParser, type EventSourceMessage } from "eventsource-parser";
import {
  ConnectionError,
  errorFromAnswer,
  HutchError,
  TimeoutError,
  UnauthenticatedError,
} from "./errors.js";

export const DEFAULT_URL = "http://127.0.0.1:7070";
export const DEFAULT_TIMEOUT_MS = 60_000;
export const DEFAULT_RETRIES = 2;

/** How to reach a server; each field defaults as documented. */
export interface ConnectionOptions {
  /** The server, default `HUTCH_URL`, else http://127.0.0.1:7070. */
  url?: string;
  /** A bearer token, default `HUTCH_TOKEN`. */
  token?: string;
  /** Milliseconds a call may take (default 60 000; 0: no limit). Creates, checkpoints, forks and
   *  commands (which have their own timeout) wait as long as they take. */
  timeoutMs?: number;
  /** How often an idempotent call (GET, PUT, DELETE, idempotent lifecycle POSTs) is tried again
   *  after a connection error, a 429 or a 502/504 (default 2; 0: never). */
  retries?: number;
}

export interface Config {
  url: string;
  token: string;
  timeoutMs: number;
  retries: number;
}

export function resolveConfig(o: ConnectionOptions = {}): Config {
  const url = (o.url ?? process.env.HUTCH_URL ?? DEFAULT_URL).replace(/\/+$/, "");
  const token = o.token ?? process.env.HUTCH_TOKEN;
  if (!token) {
    throw new UnauthenticatedError(
      "no token: pass token or set HUTCH_TOKEN (the admin's is in DATA_DIR/admin.token)",
      "unauthenticated",
    );
  }
  return {
    url,
    token,
    timeoutMs: o.timeoutMs ?? DEFAULT_TIMEOUT_MS,
    retries: o.retries ?? DEFAULT_RETRIES,
  };
}

export type Query = Record<string, string | number | boolean | string[] | undefined | null>;
export type Body = string | Uint8Array | ReadableStream<Uint8Array> | Blob;

export interface RequestOptions {
  query?: Query;
  json?: unknown;
  body?: Body;
  headers?: Record<string, string>;
  /** Answer the body's bytes instead of decoded JSON. */
  raw?: boolean;
  /** Default: GET/HEAD/PUT/DELETE yes, POST/PATCH no. */
  idempotent?: boolean;
  /** Milliseconds; undefined: the client's; 0: no limit. */
  timeoutMs?: number;
  signal?: AbortSignal;
}

// Statuses after which an idempotent call is tried again: rate limited, or a proxy in front
// of the server that could not reach it. hutch's own 503 means a sandbox does not answer,
// which a retry a moment later does not change.
const RETRY_STATUSES = new Set([429, 502, 504]);
const IDEMPOTENT = new Set(["GET", "HEAD", "PUT", "DELETE"]);

export interface SSEEvent {
  event: string;
  data: any;
  id?: string;
}

function buildUrl(base: string, path: string, query?: Query): string {
  const u = new URL(base + path);
  for (const [k, v] of Object.entries(query ?? {})) {
    if (v === undefined || v === null) continue;
    if (Array.isArray(v)) v.forEach((x) => u.searchParams.append(k, x));
    else u.searchParams.append(k, String(v));
  }
  return u.toString();
}

function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}

function transportError(e: unknown, timeoutMs: number): HutchError {
  if (e instanceof HutchError) return e;
  const name = (e as { name?: string })?.name;
  if (name === "TimeoutError")
    return new TimeoutError(`no answer within ${timeoutMs} ms`, "timeout");
  const cause = (e as { cause?: unknown })?.cause ?? e;
  return new ConnectionError(`connection to hutch failed: ${String(cause)}`, "connection");
}

export class Transport {
  constructor(readonly config: Config) {}

  private init(method: string, o: RequestOptions, accept?: string): RequestInit {
    const headers: Record<string, string> = {
      Authorization: `Bearer ${this.config.token}`,
      ...(o.headers ?? {}),
    };
    if (accept) headers.Accept = accept;
    let body: RequestInit["body"];
    if (o.json !== undefined) {
      headers["Content-Type"] = "application/json";
      body = JSON.stringify(o.json);
    } else if (o.body !== undefined) {
      body = o.body as RequestInit["body"];
    }
    const timeoutMs = o.timeoutMs ?? this.config.timeoutMs;
    const signals = [o.signal, timeoutMs ? AbortSignal.timeout(timeoutMs) : undefined].filter(
      (s): s is AbortSignal => !!s,
    );
    const init: RequestInit & { duplex?: string } = {
      method,
      headers,
      body,
      signal: signals.length ? AbortSignal.any(signals) : undefined,
    };
    if (o.body instanceof ReadableStream) init.duplex = "half";
    return init;
  }

  async request<T = any>(method: string, path: string, o: RequestOptions = {}): Promise<T> {
    const idempotent = o.idempotent ?? IDEMPOTENT.has(method);
    const attempts =
      1 + (idempotent && !(o.body instanceof ReadableStream) ? this.config.retries : 0);
    const timeoutMs = o.timeoutMs ?? this.config.timeoutMs;
    for (let attempt = 0; ; attempt++) {
      let err: HutchError;
      try {
        const res = await fetch(buildUrl(this.config.url, path, o.query), this.init(method, o));
        if (!RETRY_STATUSES.has(res.status) || attempt + 1 >= attempts) {
          if (res.status >= 400) {
            throw errorFromAnswer(res.status, await res.text(), res.headers.get("retry-after"));
          }
          if (o.raw) return new Uint8Array(await res.arrayBuffer()) as T;
          const text = await res.text();
          return (text ? JSON.parse(text) : null) as T;
        }
        err = errorFromAnswer(res.status, await res.text(), res.headers.get("retry-after"));
      } catch (e) {
        err = transportError(e, timeoutMs);
        if (err.status || attempt + 1 >= attempts || o.signal?.aborted) throw err;
      }
      const backoff = err.retryAfter
        ? Math.min(err.retryAfter * 1000, 30_000)
        : Math.min(50 * 2 ** attempt, 2000) * (0.5 + Math.random() / 2);
      await sleep(backoff);
    }
  }

  /** A Server-Sent Events stream, event by event. Never retried: events handed out cannot be
   *  unsaid. `timeoutMs` bounds the whole stream (0: none); abort `signal` to stop it. */
  async *sse(method: string, path: string, o: RequestOptions = {}): AsyncGenerator<SSEEvent> {
    const timeoutMs = o.timeoutMs ?? 0;
    let res: Response;
    try {
      res = await fetch(
        buildUrl(this.config.url, path, o.query),
        this.init(method, { ...o, timeoutMs }, "text/event-stream"),
      );
    } catch (e) {
      throw transportError(e, timeoutMs);
    }
    if (res.status >= 400) {
      throw errorFromAnswer(res.status, await res.text(), res.headers.get("retry-after"));
    }
    const queue: SSEEvent[] = [];
    const parser = createParser({
      onEvent(m: EventSourceMessage) {
        let data: any = m.data;
        try {
          data = JSON.parse(m.data);
        } catch {
          // not JSON: hand it on as text
        }
        queue.push({ event: m.event ?? "message", data, id: m.id });
      },
    });
    const decoder = new TextDecoder();
    try {
      for await (const chunk of res.body as unknown as AsyncIterable<Uint8Array>) {
        parser.feed(decoder.decode(chunk, { stream: true }));
        while (queue.length) yield queue.shift()!;
      }
    } catch (e) {
      if (o.signal?.aborted) return;
      throw transportError(e, timeoutMs);
    }
  }

  wsUrl(path: string): string {
    return this.config.url.replace(/^http/, "ws") + path;
  }
}
