// Whether the sandforge server answers. Whoever fails to reach it calls lost(); from then on
// /api/health is probed with backoff until it answers, and everyone waiting is told at once.
// One object per page, so the run stream, the preview poll and the live feed never disagree
// about whether the server is there.
import { sleep } from "./dom.js";

const FIRST_PROBE_MS = 1000;
const MAX_PROBE_MS = 15000;

export class ServerConnection extends EventTarget {
  constructor({ healthPath = "/api/health" } = {}) {
    super();
    this.healthPath = healthPath;
    this.online = true;
    this.probing = false;
    this.wake = null; // aborts the current wait, so "Reconnect now" probes at once
  }

  /** Something could not reach the server: say so, and probe until it is back. */
  lost() {
    if (this.online) {
      this.online = false;
      this.dispatchEvent(new CustomEvent("change", { detail: { online: false } }));
    }
    if (!this.probing) this.probe();
  }

  /** Probe now instead of at the next scheduled attempt. */
  reconnectNow() {
    if (this.online) return;
    this.wake?.abort();
  }

  /** Resolves once the server answers (at once when it already does). */
  whenOnline(signal) {
    if (this.online) return Promise.resolve();
    return new Promise((resolve) => {
      const done = () => {
        this.removeEventListener("change", onChange);
        signal?.removeEventListener("abort", done);
        resolve();
      };
      const onChange = (event) => {
        if (event.detail.online) done();
      };
      this.addEventListener("change", onChange);
      signal?.addEventListener("abort", done, { once: true });
    });
  }

  async probe() {
    this.probing = true;
    let delay = FIRST_PROBE_MS;
    while (!this.online) {
      this.wake = new AbortController();
      await sleep(delay, this.wake.signal);
      delay = Math.min(delay * 2, MAX_PROBE_MS);
      try {
        const response = await fetch(this.healthPath, { cache: "no-store" });
        if (response.ok) {
          this.online = true;
          this.dispatchEvent(new CustomEvent("change", { detail: { online: true } }));
        }
      } catch {
        /* still gone; wait longer */
      }
    }
    this.probing = false;
  }
}
