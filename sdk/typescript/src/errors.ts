/**
 * Typed errors. Every API error answer is `{"error": {"code", "message"}}`; the code picks the
 * class, so `err instanceof NotFoundError` reads as the API's `not_found`.
 */

export class HutchError extends Error {
  /** The API's error code (`not_found`, `conflict`, …), or the SDK's own (`connection`,
   *  `timeout`). */
  readonly code: string;
  /** The HTTP status; 0 when no answer came. */
  readonly status: number;
  /** The server's `Retry-After`, in seconds (rate limits). */
  readonly retryAfter?: number;

  constructor(message: string, code: string, status = 0, retryAfter?: number) {
    super(status ? `${code}: ${message}` : message);
    this.name = new.target.name;
    this.code = code;
    this.status = status;
    this.retryAfter = retryAfter;
  }

  /** The message as the server wrote it, without the code. */
  get apiMessage(): string {
    return this.status ? this.message.slice(this.code.length + 2) : this.message;
  }
}

export class InvalidArgumentError extends HutchError {}
export class UnauthenticatedError extends HutchError {}
export class PermissionDeniedError extends HutchError {}
export class NotFoundError extends HutchError {}
export class ConflictError extends HutchError {}
export class PayloadTooLargeError extends HutchError {}
export class ResourceExhaustedError extends HutchError {}
export class InsufficientStorageError extends HutchError {}
export class UnavailableError extends HutchError {}
export class InternalError extends HutchError {}
/** No answer: the server could not be reached or the connection broke. */
export class ConnectionError extends HutchError {}
/** The call took longer than its timeout. */
export class TimeoutError extends HutchError {}

/** `commands.run(..., { check: true })` and the command did not exit 0. */
export class CommandExitError extends HutchError {
  constructor(readonly result: { exitCode: number; signal: number; stderr: string }) {
    super(
      `command exited with ${result.exitCode}` +
        (result.signal ? ` (signal ${result.signal})` : "") +
        (result.stderr.trim() ? `: ${result.stderr.trim().slice(-500)}` : ""),
      "command_exit",
    );
  }
}

const byCode: Record<string, typeof HutchError> = {
  invalid_argument: InvalidArgumentError,
  unauthenticated: UnauthenticatedError,
  permission_denied: PermissionDeniedError,
  not_found: NotFoundError,
  conflict: ConflictError,
  payload_too_large: PayloadTooLargeError,
  resource_exhausted: ResourceExhaustedError,
  insufficient_storage: InsufficientStorageError,
  unavailable: UnavailableError,
  internal: InternalError,
};

/** The error for an error answer: its code's class, or HutchError with `http_<status>`. */
export function errorFromAnswer(
  status: number,
  body: string,
  retryAfter?: string | null,
): HutchError {
  let code = `http_${status}`;
  let message = body.slice(0, 500) || `HTTP ${status}`;
  try {
    const err = JSON.parse(body).error;
    if (err && typeof err.code === "string") {
      code = err.code;
      message = String(err.message);
    }
  } catch {
    // not the API's error shape (a proxy's page): keep the body
  }
  const after = retryAfter ? Number(retryAfter) : undefined;
  const Cls = byCode[code] ?? HutchError;
  return new Cls(message, code, status, Number.isFinite(after) ? after : undefined);
}
