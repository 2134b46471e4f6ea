// Live updates of a project for everyone viewing it: GET /api/projects/{id}/events.
// A run's `complete` (the page replays that run from its own event log), and a version made
// outside any run (a restore or a manual edit: a `progress` naming its `version`).
import { projectPath, request } from "./api.js";
import { readSSE } from "./sse.js";
import { sleep } from "./dom.js";

const FIRST_BACKOFF_MS = 1000;
const MAX_BACKOFF_MS = 30000;

export class ProjectFeed {
  /**
   * @param {object} opts
   * @param {import("./connection.js").ServerConnection} opts.connection
   * @param {(event: object) => void} opts.onForeignComplete
   * @param {(version: number) => void} [opts.onVersion]
   */
  constructor({ connection, onForeignComplete, onVersion = () => {} }) {
    this.connection = connection;
    this.onForeignComplete = onForeignComplete;
    this.onVersion = onVersion;
    this.projectId = null;
    this.controller = null;
  }

  open(projectId) {
    if (projectId === this.projectId) return;
    this.close();
    this.projectId = projectId;
    this.controller = new AbortController();
    this.follow(projectId, this.controller.signal);
  }

  close() {
    this.controller?.abort();
    this.controller = null;
    this.projectId = null;
  }

  async follow(projectId, signal) {
    let delay = FIRST_BACKOFF_MS;
    while (!signal.aborted) {
      try {
        const response = await request(`${projectPath(projectId)}/events`, { headers: { accept: "text/event-stream" }, signal });
        // The project was deleted: there is nothing left to follow.
        if (!response.ok) return;
        delay = FIRST_BACKOFF_MS;
        for await (const frame of readSSE(response)) {
          const event = JSON.parse(frame.data);
          if (event.type === "complete") this.onForeignComplete(event);
          else if (event.type === "progress" && event.data?.version) this.onVersion(event.data.version);
        }
      } catch (err) {
        if (signal.aborted) return;
        if (err.unreachable) {
          this.connection.lost();
          await this.connection.whenOnline(signal);
          continue;
        }
      }
      // The stream ended or broke while the server still answers: try again, more slowly each time.
      await sleep(delay, signal);
      delay = Math.min(delay * 2, MAX_BACKOFF_MS);
    }
  }
}
