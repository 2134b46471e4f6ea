// JSON API helpers. Every API failure is {"error": {"code", "message"}}.

export class ApiError extends Error {
  constructor(status, code, message) {
    super(message);
    this.name = "ApiError";
    this.status = status;
    this.code = code;
  }
}

/** Turn a failed Response into an ApiError carrying the server's own message. */
export async function apiError(response) {
  let code = `http_${response.status}`;
  let message = `${response.status} ${response.statusText || "error"}`;
  try {
    const text = await response.text();
    try {
      const body = JSON.parse(text);
      if (body && body.error) {
        code = body.error.code || code;
        message = body.error.message || message;
      } else if (body && typeof body.detail === "string") {
        message = body.detail;
      }
    } catch {
      if (text) message = text.slice(0, 500);
    }
  } catch {
    /* the body could not be read; keep the status line */
  }
  return new ApiError(response.status, code, message);
}

export async function api(path, { method = "GET", body, signal, headers } = {}) {
  const init = { method, signal, headers: { accept: "application/json", ...(headers || {}) } };
  if (body !== undefined) {
    init.headers["content-type"] = "application/json";
    init.body = JSON.stringify(body);
  }
  let response;
  try {
    response = await fetch(path, init);
  } catch (err) {
    if (err.name === "AbortError") throw err;
    throw new ApiError(0, "network", "Could not reach the sandforge server. Check that it is running and your connection is up.");
  }
  if (!response.ok) throw await apiError(response);
  if (response.status === 204) return null;
  const type = response.headers.get("content-type") || "";
  return type.includes("json") ? response.json() : response.text();
}

export const sandboxPath = (id) => `/api/sandboxes/${encodeURIComponent(id)}`;
export const filePath = (id, path) => `${sandboxPath(id)}/files/${path.split("/").map(encodeURIComponent).join("/")}`;

// Existence checks go through the lists, so a deleted sandbox or project never costs a 404
// (which the browser would log as a console error).
let sandboxCache = null;
export async function listSandboxes({ maxAgeMs = 1000 } = {}) {
  if (sandboxCache && Date.now() - sandboxCache.at < maxAgeMs) return sandboxCache.promise;
  const promise = api("/api/sandboxes").then((body) => body.sandboxes);
  sandboxCache = { at: Date.now(), promise };
  promise.catch(() => (sandboxCache = null));
  return promise;
}

export async function findSandbox(id) {
  return (await listSandboxes()).find((s) => s.id === id) || null;
}

/** The projects, or null when this server has no projects API. */
export async function listProjects() {
  try {
    return (await api("/api/projects")).projects;
  } catch (err) {
    if (err instanceof ApiError && (err.status === 404 || err.status === 405)) return null;
    throw err;
  }
}
