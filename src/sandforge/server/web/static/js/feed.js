// Live updates of a project for everyone viewing it: GET /api/projects/{id}/events.
// Only `complete` matters here; the page replays that run from its own event log.
import { readSSE } from "./sse.js";
import { listProjects } from "./api.js";
import { sleep } from "./dom.js";

const MAX_BACKOFF_MS = 30000;

export class ProjectFeed {
  constructor({ onForeignComplete }) {
    this.onForeignComplete = onForeignComplete;
    this.projectId = null;
    this.controller = null;
  }

  open(projectId) {
    if (projectId === this.projectId) return;
    this.close();
    this.projectId = projectId;
    this.controller = new AbortController();
    this.loop(projectId, this.controller.signal);
  }

  close() {
    this.controller?.abort();
    this.controller = null;
    this.projectId = null;
  }

  async loop(projectId, signal) {
    let delay = 1000;
    let first = true;
    while (!signal.aborted) {
      try {
        if (!first) {
          // Reconnect only to a project that still exists (no 404 noise after a delete).
          const projects = await listProjects();
          if (!projects || !projects.some((p) => p.id === projectId)) return;
        }
        first = false;
        const response = await fetch(`/api/projects/${encodeURIComponent(projectId)}/events`, {
          headers: { accept: "text/event-stream" },
          signal,
        });
        if (response.status === 404 || response.status === 405) return; // no live feed here
        if (response.ok) {
          delay = 1000;
          for await (const frame of readSSE(response)) {
            let event;
            try {
              event = JSON.parse(frame.data);
            } catch {
              continue;
            }
            if (event.type === "complete") this.onForeignComplete(event);
          }
        }
      } catch {
        if (signal.aborted) return;
      }
      await sleep(delay, signal);
      delay = Math.min(delay * 2, MAX_BACKOFF_MS);
    }
  }
}
