// Follows one run's events: the POST that starts it, then, if the connection drops,
// GET /api/runs/{runId}/events with Last-Event-ID until a terminal event arrives.
// Stopping a RunStream only stops reading; the run itself goes on (POST /cancel stops it).
import { apiError, request, runPath, ApiError } from "./api.js";
import { readSSE } from "./sse.js";
import { sleep } from "./dom.js";

const TERMINAL = new Set(["complete", "error"]);
const RUN_ID_HEADER = "x-sandforge-run-id";
const PROJECT_ID_HEADER = "x-sandforge-project-id";
const MAX_BACKOFF_MS = 15000;
const MAX_ATTEMPTS_WITHOUT_RUN = 6;

export class RunStream {
  /**
   * @param {object} hooks
   * @param {import("./connection.js").ServerConnection} hooks.connection  told when the server is unreachable
   * @param {(event: object, seq: number) => void} hooks.onEvent   each event once, in order
   * @param {(state: string, detail?: string) => void} [hooks.onState]
   *   connecting | streaming | reconnecting (the stream dropped) | offline (the server does not answer) | done | failed
   * @param {(runId: string) => void} [hooks.onRunId]
   * @param {(projectId: string) => void} [hooks.onProjectId]
   * @param {Set<string>} [hooks.knownRunIds]  runs of this project that are not this one
   */
  constructor({ connection, onEvent, onState, onRunId, onProjectId, knownRunIds } = {}) {
    this.connection = connection;
    this.onEvent = onEvent;
    this.onState = onState || (() => {});
    this.onRunId = onRunId || (() => {});
    this.onProjectId = onProjectId || (() => {});
    this.knownRunIds = knownRunIds || new Set();
    this.projectId = null;
    this.lastSeq = 0;
    this.runId = null;
    this.sandboxId = null;
    this.prompt = null;
    this.startedAt = undefined;
    this.finished = false;
    this.retryMs = 1000;
    this.offlineNote = null; // why the server is away, when it said so (it is shutting down)
    this.controller = new AbortController();
    this.wake = null; // aborts the wait before the next reconnect attempt
  }

  get aborted() {
    return this.controller.signal.aborted;
  }

  /** Stop reading (e.g. the user opened another project). The run is not cancelled. */
  stop() {
    this.controller.abort();
  }

  /** Try again now instead of at the next scheduled attempt. */
  reconnectNow() {
    this.connection.reconnectNow();
    this.wake?.abort();
  }

  setRunId(runId) {
    if (runId && runId !== this.runId) {
      this.runId = runId;
      this.onRunId(runId);
    }
  }

  setProjectId(projectId) {
    if (projectId && projectId !== this.projectId) {
      this.projectId = projectId;
      this.onProjectId(projectId);
    }
  }

  /** Start a run with a POST. Throws ApiError when the server refuses (or cannot take) the request. */
  async start(path, body) {
    this.prompt = body.messages[body.messages.length - 1].content;
    this.sandboxId = body.sandboxId || null;
    this.projectId = body.projectId || null;
    this.startedAt = Date.now() / 1000;
    this.onState("connecting");
    let response;
    try {
      response = await request(path, {
        method: "POST",
        headers: { "content-type": "application/json", accept: "text/event-stream" },
        body: JSON.stringify(body),
        signal: this.controller.signal,
      });
    } catch (err) {
      if (this.aborted) return;
      if (err instanceof ApiError) this.connection.lost();
      throw err;
    }
    if (!response.ok) throw await apiError(response);
    this.setRunId(response.headers.get(RUN_ID_HEADER));
    this.setProjectId(response.headers.get(PROJECT_ID_HEADER));
    await this.consume(response);
    if (!this.finished) await this.reconnect();
  }

  /** Replay a run from the start (or after `after`) and tail it until it ends. */
  async follow(runId, after = 0) {
    this.setRunId(runId);
    this.lastSeq = after;
    await this.reconnect(true);
  }

  async consume(response) {
    this.onState("streaming");
    try {
      for await (const frame of readSSE(response, { onRetry: (ms) => (this.retryMs = ms) })) {
        if (this.aborted) return;
        let event;
        try {
          event = JSON.parse(frame.data);
        } catch {
          continue; // not one of ours
        }
        if (event.type === "error" && event.data?.code === "server_shutdown") {
          // Not the run's end (the frame has no id of its own): the server is stopping. The
          // run is stored to its end, or marked interrupted; follow it again once it is back.
          this.connection.lost();
          this.offlineNote = "The server is shutting down: this run's progress shows again once it is back.";
          return;
        }
        const seq = /^\d+$/.test(frame.id) ? Number(frame.id) : this.lastSeq + 1;
        if (seq <= this.lastSeq) continue; // already shown (a replay overlapped)
        this.lastSeq = seq;
        this.track(event);
        this.onEvent(event, seq);
        if (TERMINAL.has(event.type)) {
          this.finished = true;
          this.onState("done");
          return;
        }
      }
    } catch {
      // The connection dropped mid-stream; the caller reconnects.
    }
  }

  track(event) {
    const data = event.data || {};
    if (data.sandboxId) this.sandboxId = data.sandboxId;
    if (event.type === "complete" && data.runId) this.setRunId(data.runId);
    if (event.type === "complete" && data.projectId) this.setProjectId(data.projectId);
  }

  /** Find this run when the server did not name it: the newest run with our prompt (and sandbox). */
  async discover() {
    const query = this.projectId ? `?projectId=${encodeURIComponent(this.projectId)}` : "";
    const response = await request(`/api/runs${query}`, { signal: this.controller.signal });
    if (!response.ok) throw await apiError(response);
    const { runs } = await response.json();
    const candidates = runs.filter(
      (r) =>
        r.prompt === this.prompt &&
        !this.knownRunIds.has(r.runId) &&
        (!this.sandboxId || !r.sandboxId || r.sandboxId === this.sandboxId) &&
        (this.startedAt === undefined || r.createdAt >= this.startedAt - 300),
    );
    candidates.sort((a, b) => b.createdAt - a.createdAt);
    return candidates[0]?.runId || null;
  }

  async wait(ms) {
    this.wake = new AbortController();
    const both = AbortSignal.any([this.wake.signal, this.controller.signal]);
    await sleep(ms, both);
  }

  async reconnect(immediate = false) {
    let delay = this.retryMs;
    let attempts = 0;
    let first = immediate;
    while (!this.finished && !this.aborted) {
      if (!first) {
        if (this.connection.online) {
          this.onState("reconnecting", "The connection to the server dropped; reconnecting…");
          await this.wait(delay);
        } else {
          this.onState("offline", this.offlineNote || "Lost the connection: this run's progress shows again once the server answers.");
          await this.connection.whenOnline(this.controller.signal);
          this.offlineNote = null;
        }
        if (this.aborted) return;
      }
      first = false;
      attempts += 1;
      try {
        if (!this.runId) this.setRunId(await this.discover());
        if (!this.runId) {
          if (attempts >= MAX_ATTEMPTS_WITHOUT_RUN) {
            this.fail("lost_run", "The connection dropped and this run could not be found again. Open it from Projects once the server is back.");
            return;
          }
        } else {
          const headers = { accept: "text/event-stream" };
          if (this.lastSeq > 0) headers["Last-Event-ID"] = String(this.lastSeq);
          const response = await request(`${runPath(this.runId)}/events`, { headers, signal: this.controller.signal });
          if (response.status === 404) {
            const err = await apiError(response);
            this.fail(err.code, `${err.message} The server no longer knows this run (its data may have been reset).`);
            return;
          }
          if (!response.ok) throw await apiError(response);
          await this.consume(response);
          if (this.finished || this.aborted) return;
          delay = this.retryMs; // it was up; start the backoff over
          continue;
        }
      } catch (err) {
        if (this.aborted) return;
        if (err instanceof ApiError && err.unreachable) this.connection.lost();
      }
      delay = Math.min(Math.max(delay, 500) * 2, MAX_BACKOFF_MS);
    }
  }

  fail(code, message) {
    this.finished = true;
    this.onState("failed", message);
    this.onEvent({ type: "error", data: { message, code, clientSide: true } }, this.lastSeq);
  }
}
