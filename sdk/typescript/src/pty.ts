/**
 * Terminals over `GET …/exec/ws` (docs/api.md, "Streaming exec over WebSocket"), with the `ws`
 * package: the first text message is the exec spec with `tty`, then binary messages whose first
 * byte is the channel (0 stdin, 1 stdout, 2 stderr, 3 status, 4 resize, 5 signal).
 */
import WebSocket from "ws";
import { ConnectionError, errorFromAnswer, HutchError } from "./errors.js";
import type { Transport } from "./transport.js";

const STDIN = 0;
const STDOUT = 1;
const STDERR = 2;
const STATUS = 3;
const RESIZE = 4;
const SIGNAL = 5;

export interface PtyResult {
  exitCode: number;
  signal: number;
  timedOut: boolean;
  durationMs: number;
}

export interface PtyOptions {
  rows?: number;
  cols?: number;
  /** The terminal's output as it comes. */
  onData?: (data: Uint8Array) => unknown;
  /** What runs: a string for `sh -c`, or an argv; default an interactive bash. */
  cmd?: string | string[];
  env?: Record<string, string>;
  cwd?: string;
  timeoutMs?: number;
}

export class PtyHandle {
  private readonly done: Promise<PtyResult>;

  constructor(
    private readonly ws: WebSocket,
    onData: PtyOptions["onData"],
  ) {
    this.done = new Promise<PtyResult>((resolve, reject) => {
      ws.on("message", (raw: Buffer, isBinary: boolean) => {
        if (!isBinary || raw.length === 0) return;
        const channel = raw[0];
        const payload = raw.subarray(1);
        if (channel === STDOUT || channel === STDERR) {
          onData?.(payload);
        } else if (channel === STATUS) {
          const st = JSON.parse(payload.toString("utf8"));
          if (st.error) reject(errorFromAnswer(400, JSON.stringify({ error: st.error })));
          else
            resolve({
              exitCode: st.exit_code ?? -1,
              signal: st.signal ?? 0,
              timedOut: !!st.timed_out,
              durationMs: st.duration_ms ?? 0,
            });
        }
      });
      ws.on("close", () =>
        reject(new ConnectionError("the terminal closed without a status", "connection")),
      );
      ws.on("error", (e) =>
        reject(new ConnectionError(`terminal connection broke: ${e.message}`, "connection")),
      );
    });
    this.done.catch(() => {}); // observed by wait(); an unawaited close is not an error
  }

  private send(channel: number, payload: Uint8Array | string): Promise<void> {
    const body = typeof payload === "string" ? Buffer.from(payload) : payload;
    const frame = Buffer.concat([Buffer.from([channel]), body]);
    return new Promise((resolve, reject) =>
      this.ws.send(frame, { binary: true }, (e) => (e ? reject(e) : resolve())),
    );
  }

  /** Bytes typed at the terminal ("\x03" is ^C); empty means EOF. */
  sendInput(data: string | Uint8Array): Promise<void> {
    return this.send(STDIN, data);
  }

  resize(rows: number, cols: number): Promise<void> {
    return this.send(RESIZE, JSON.stringify({ rows, cols }));
  }

  signal(signal: string | number): Promise<void> {
    return this.send(SIGNAL, JSON.stringify({ signal }));
  }

  /** SIGKILL to the terminal's process group; `wait()` then answers how it ended. */
  kill(): Promise<void> {
    return this.signal("KILL");
  }

  /** How the terminal's command ended. */
  wait(o: { timeoutMs?: number } = {}): Promise<PtyResult> {
    if (!o.timeoutMs) return this.done;
    let timer: NodeJS.Timeout;
    const timeout = new Promise<never>((_, reject) => {
      timer = setTimeout(
        () =>
          reject(new HutchError(`the terminal did not end within ${o.timeoutMs} ms`, "timeout")),
        o.timeoutMs,
      );
    });
    return Promise.race([this.done, timeout]).finally(() => clearTimeout(timer));
  }

  /** Closes the connection (which kills the terminal's processes if they still run). */
  close(): void {
    this.ws.close();
  }
}

export class Pty {
  constructor(
    private readonly t: Transport,
    private readonly sessionPath: string,
  ) {}

  /** Opens a terminal of `rows`×`cols` (24×80) running `cmd` (an interactive bash). */
  async create(o: PtyOptions = {}): Promise<PtyHandle> {
    const spec: Record<string, unknown> = { tty: { rows: o.rows ?? 24, cols: o.cols ?? 80 } };
    if (typeof o.cmd === "string") spec.command = o.cmd;
    else spec.cmd = o.cmd ?? ["/bin/bash", "-i"];
    if (o.env) spec.env = o.env;
    if (o.cwd !== undefined) spec.cwd = o.cwd;
    if (o.timeoutMs) spec.timeout_seconds = Math.ceil(o.timeoutMs / 1000);
    const ws = new WebSocket(this.t.wsUrl(`${this.sessionPath}/exec/ws`), {
      headers: { Authorization: `Bearer ${this.t.config.token}` },
      perMessageDeflate: false,
      handshakeTimeout: this.t.config.timeoutMs || undefined,
    });
    await new Promise<void>((resolve, reject) => {
      ws.once("open", () => resolve());
      ws.once("unexpected-response", (_req, res) => {
        let body = "";
        res.on("data", (c: Buffer) => (body += c.toString()));
        res.on("end", () => reject(errorFromAnswer(res.statusCode ?? 0, body)));
      });
      ws.once("error", (e) =>
        reject(new ConnectionError(`terminal connection failed: ${e.message}`, "connection")),
      );
    });
    const handle = new PtyHandle(ws, o.onData);
    ws.send(JSON.stringify(spec));
    return handle;
  }
}
