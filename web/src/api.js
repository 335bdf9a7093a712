// The API as the console calls it: same-origin fetches that carry the console's HttpOnly cookie
// (the browser adds it; script never sees the token), with X-Hutch-CSRF on every change.
// Errors come back as ApiError with the API's own code and message.

let csrf = null;
// The user the console acts for (an instructor for a participant of their workshop, an admin for
// anyone): every call then carries X-Hutch-Owner, and URLs that cannot carry a header (WebSocket,
// EventSource, download links) get ?owner= through withOwner. The API records the signed-in user
// as the actor.
let actingFor = null;

export function setCsrf(value) { csrf = value; }
export function actFor(userId) { actingFor = userId || null; }

// `url` with owner=<the user acted for> added to its query (unchanged when acting for no one).
export function withOwner(url) {
  if (!actingFor) return url;
  return url + (url.includes("?") ? "&" : "?") + "owner=" + encodeURIComponent(actingFor);
}

export class ApiError extends Error {
  constructor(status, code, message) {
    super(message);
    this.status = status;
    this.code = code;
  }
}

async function errorFrom(res) {
  let code = "http_" + res.status, message = `${res.status} ${res.statusText}`;
  try {
    const body = await res.json();
    if (body && body.error) {
      code = body.error.code || code;
      message = body.error.message || message;
    }
  } catch { /* not JSON: keep the status line */ }
  return new ApiError(res.status, code, message);
}

function headersFor(method, extra) {
  const headers = { Accept: "application/json", ...extra };
  if (actingFor) headers["X-Hutch-Owner"] = actingFor;
  if (method !== "GET" && method !== "HEAD") headers["X-Hutch-CSRF"] = csrf || "-";
  return headers;
}

// call("POST", "/v1/sessions", {name: "x"}) → the parsed JSON answer, or throws ApiError.
export async function call(method, path, body) {
  const init = { method, credentials: "same-origin", headers: headersFor(method, {}) };
  if (body !== undefined) {
    init.body = JSON.stringify(body);
    init.headers["Content-Type"] = "application/json";
  }
  const res = await fetch(path, init);
  if (!res.ok) throw await errorFrom(res);
  const type = res.headers.get("Content-Type") || "";
  return type.includes("json") ? res.json() : res.text();
}

// POST of a text body (a CSV import): the parsed JSON answer, or throws ApiError.
export async function postText(path, body, contentType) {
  const headers = headersFor("POST", { "Content-Type": contentType });
  const res = await fetch(path, { method: "POST", credentials: "same-origin", headers, body });
  if (!res.ok) throw await errorFrom(res);
  return res.json();
}

// GET returning the body as text (file contents, process output).
export async function text(path) {
  const res = await fetch(withOwner(path), { credentials: "same-origin" });
  if (!res.ok) throw await errorFrom(res);
  return res.text();
}

// PUT of a File with upload progress (fetch has none): onProgress(loaded, total).
export function upload(path, file, onProgress) {
  return new Promise((resolve, reject) => {
    const xhr = new XMLHttpRequest();
    xhr.open("PUT", path);
    xhr.setRequestHeader("X-Hutch-CSRF", csrf || "-");
    if (actingFor) xhr.setRequestHeader("X-Hutch-Owner", actingFor);
    xhr.setRequestHeader("Content-Type", "application/octet-stream");
    xhr.upload.onprogress = (e) => onProgress(e.loaded, e.lengthComputable ? e.total : file.size);
    xhr.onload = () => {
      let body = null;
      try { body = JSON.parse(xhr.responseText); } catch { /* keep null */ }
      if (xhr.status >= 200 && xhr.status < 300) return resolve(body);
      const err = body && body.error;
      reject(new ApiError(xhr.status, err ? err.code : "http_" + xhr.status,
                          err ? err.message : `${xhr.status} ${xhr.statusText}`));
    };
    xhr.onerror = () => reject(new ApiError(0, "network", "the upload failed: the connection broke"));
    xhr.send(file);
  });
}

export function sessionPath(id, rest = "") {
  return `/v1/sessions/${encodeURIComponent(id)}${rest}`;
}

export function query(params) {
  const q = new URLSearchParams();
  for (const [k, v] of Object.entries(params)) {
    if (v === undefined || v === null || v === "") continue;
    for (const one of Array.isArray(v) ? v : [v]) q.append(k, one);
  }
  const s = q.toString();
  return s ? "?" + s : "";
}
