// JSON API helpers. Every API failure is {"error": {"code", "message"}}.

export class ApiError extends Error {
  constructor(status, code, message) {
    super(message);
    this.name = "ApiError";
    this.status = status;
    this.code = code;
  }

  /** The server could not be reached at all (as opposed to answering with an error). */
  get unreachable() {
    return this.status === 0;
  }
}

const UNREACHABLE_MESSAGE = "Could not reach the sandforge server. Check that it is running and your connection is up.";

/** Turn a failed Response into an ApiError carrying the server's own message. */
export async function apiError(response) {
  let code = `http_${response.status}`;
  let message = `The server answered ${response.status} ${response.statusText || ""}`.trim();
  try {
    const text = await response.text();
    try {
      const body = JSON.parse(text);
      if (body?.error) {
        code = body.error.code || code;
        message = body.error.message || message;
      }
    } catch {
      // Not JSON: a proxy in between answered. Its text is better than nothing.
      if (text) message = text.slice(0, 500);
    }
  } catch {
    /* the body could not be read; keep the status line */
  }
  return new ApiError(response.status, code, message);
}

/** fetch() that turns "the server is not there" into an ApiError (status 0) instead of a TypeError. */
export async function request(path, init = {}) {
  try {
    return await fetch(path, init);
  } catch (err) {
    if (err.name === "AbortError") throw err;
    throw new ApiError(0, "unreachable", UNREACHABLE_MESSAGE);
  }
}

export async function api(path, { method = "GET", body, signal, headers } = {}) {
  const init = { method, signal, headers: { accept: "application/json", ...(headers || {}) } };
  if (body !== undefined) {
    init.headers["content-type"] = "application/json";
    init.body = JSON.stringify(body);
  }
  const response = await request(path, init);
  if (!response.ok) throw await apiError(response);
  if (response.status === 204) return null;
  const type = response.headers.get("content-type") || "";
  return type.includes("json") ? response.json() : response.text();
}

export const sandboxPath = (id) => `/api/sandboxes/${encodeURIComponent(id)}`;
export const projectPath = (id) => `/api/projects/${encodeURIComponent(id)}`;
export const runPath = (id) => `/api/runs/${encodeURIComponent(id)}`;
export const sessionPath = (id) => `/api/sessions/${encodeURIComponent(id)}`;
export const filePath = (base, path) => `${base}/files/${path.split("/").map(encodeURIComponent).join("/")}`;

/** Share link: the preview URL with its access token, when the preview is private. */
export function shareUrl(previewUrl, token) {
  if (!previewUrl || !token) return previewUrl || "";
  const url = new URL(previewUrl);
  url.searchParams.set("token", token);
  return url.toString();
}
