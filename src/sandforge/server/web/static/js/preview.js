// The preview panel: iframe, share link, status badge (polled) and the dev server's log tail.
import { api, sandboxPath, ApiError, findSandbox } from "./api.js";
import { $, h, copyText, toast } from "./dom.js";
import { shareUrl } from "./turn.js";

const FAST_POLL_MS = 1500;
const SLOW_POLL_MS = 5000;

const ICONS = {
  screen: '<svg viewBox="0 0 24 24"><rect x="3" y="4" width="18" height="16" rx="2"/><path d="M3 9h18M7 6.5h.01M10 6.5h.01"/></svg>',
  hammer: '<svg viewBox="0 0 24 24"><path d="m15 12-8.5 8.5a2.1 2.1 0 0 1-3-3L12 9"/><path d="M17.6 15 22 10.6M20.9 11.7l-5.8-5.8a3 3 0 0 0-2.1-.9H9l.9.9a6 6 0 0 1 1.7 4.2v1.4l2 2h1.3a3 3 0 0 1 1.8.6"/></svg>',
  alert: '<svg viewBox="0 0 24 24"><path d="M12 9v4M12 17h.01"/><path d="M10.3 3.9 1.8 18a2 2 0 0 0 1.7 3h17a2 2 0 0 0 1.7-3L13.7 3.9a2 2 0 0 0-3.4 0z"/></svg>',
  pause: '<svg viewBox="0 0 24 24"><circle cx="12" cy="12" r="9"/><path d="M10 9v6M14 9v6"/></svg>',
  trash: '<svg viewBox="0 0 24 24"><path d="M3 6h18M8 6V4h8v2M19 6l-1 14H6L5 6"/></svg>',
};

export class PreviewPanel {
  constructor({ onShowLogs, onRebuilt } = {}) {
    this.onShowLogs = onShowLogs || (() => {});
    this.onRebuilt = onRebuilt || (() => {});
    this.staticFiles = false; // the persistent flow: served from stored files, no dev server
    this.projectId = null;
    this.rebuilding = false;
    this.badge = $("#preview-status");
    this.urlInput = $("#share-url");
    this.copyBtn = $("#copy-link");
    this.openLink = $("#open-link");
    this.reloadBtn = $("#reload-preview");
    this.shell = $("#frame-shell");
    this.frame = $("#preview-frame");
    this.overlay = $("#preview-overlay");
    this.overlayInner = $("#preview-overlay-inner");
    this.logTail = $("#log-tail");
    this.logsUpdated = $("#logs-updated");
    this.sandboxId = null;
    this.share = null;
    this.status = "idle";
    this.frameLoaded = false;
    this.generating = false;
    this.timer = null;
    this.pollSeq = 0;

    this.copyBtn.addEventListener("click", async () => {
      if (!this.share) return;
      const ok = await copyText(this.share);
      this.copyBtn.textContent = ok ? "Copied" : "Copy failed";
      toast(ok ? "Share link copied" : "Could not copy; select the link and copy it", ok ? "ok" : "error");
      setTimeout(() => (this.copyBtn.textContent = "Copy"), 1600);
    });
    this.urlInput.addEventListener("focus", () => this.urlInput.select());
    this.reloadBtn.addEventListener("click", () => this.loadFrame());
    for (const [id, device] of [["#device-desktop", "desktop"], ["#device-mobile", "mobile"]]) {
      $(id).addEventListener("click", () => {
        this.shell.dataset.device = device;
        $("#device-desktop").setAttribute("aria-pressed", String(device === "desktop"));
        $("#device-mobile").setAttribute("aria-pressed", String(device === "mobile"));
      });
    }
    this.frame.addEventListener("load", () => {
      if (this.frame.getAttribute("src")) this.frameLoaded = true;
      if (this.rebuilding) {
        this.rebuilding = false;
        this.onRebuilt();
      }
      this.render();
    });
    document.addEventListener("visibilitychange", () => {
      if (!document.hidden && this.sandboxId) this.poll();
    });
  }

  /** The sandbox whose dev server is polled (null: none, e.g. the persistent flow). */
  setSandbox(sandboxId) {
    sandboxId = sandboxId || null;
    if (sandboxId === this.sandboxId) return;
    this.sandboxId = sandboxId;
    this.logTail.textContent = "";
    if (sandboxId) {
      this.setStatus(this.status === "ready" ? "ready" : "booting");
      this.poll();
    } else {
      clearTimeout(this.timer);
      this.setStatus(this.staticFiles && this.share ? "ready" : "idle");
      this.render();
    }
  }

  setProject(projectId) {
    this.projectId = projectId || null;
  }

  /** The persistent flow serves stored files: no dev server, no log. */
  setStaticFiles(staticFiles) {
    this.staticFiles = staticFiles;
    if (staticFiles) this.logTail.textContent = "";
    this.logTail.dataset.empty = staticFiles ? "No dev server: this project's preview is served from its stored files." : "";
  }

  /** A run is (or is no longer) working on this project. */
  setGenerating(generating, message) {
    this.generating = generating;
    this.phaseMessage = message;
    if (generating && !this.share && (this.status === "idle" || this.status === "booting")) this.setStatus("building");
    if (!generating && this.status === "building" && !this.sandboxId) this.setStatus(this.share ? "ready" : "idle");
    this.render();
    if (generating && this.sandboxId) this.schedule(FAST_POLL_MS);
  }

  setShare(previewUrl, token) {
    const url = shareUrl(previewUrl, token);
    this.share = url;
    this.setShareUi(url);
    this.loadFrame(); // also after a follow-up: show the new version
    if (this.sandboxId) this.poll();
    else if (this.staticFiles) this.setStatus("ready");
  }

  setShareUi(url) {
    this.urlInput.value = url || "";
    this.copyBtn.disabled = !url;
    this.reloadBtn.disabled = !url;
    if (url) {
      this.openLink.href = url;
      this.openLink.removeAttribute("aria-disabled");
      this.openLink.removeAttribute("tabindex");
    } else {
      this.openLink.removeAttribute("href");
      this.openLink.setAttribute("aria-disabled", "true");
      this.openLink.setAttribute("tabindex", "-1");
    }
  }

  loadFrame() {
    if (!this.share) return;
    this.frameLoaded = false;
    // Assigning src (even the same value) navigates the frame again.
    this.frame.src = this.share;
    this.render();
  }

  setStatus(status) {
    this.status = status;
    this.badge.dataset.status = status;
    this.badge.textContent = status;
    this.badge.setAttribute("aria-label", `Preview status: ${status}`);
  }

  schedule(ms) {
    clearTimeout(this.timer);
    if (!this.sandboxId) return;
    this.timer = setTimeout(() => this.poll(), ms);
  }

  async poll() {
    clearTimeout(this.timer);
    const sandboxId = this.sandboxId;
    if (!sandboxId) return;
    if (document.hidden) return; // resumes on visibilitychange
    const mySeq = ++this.pollSeq;
    let next = FAST_POLL_MS;
    try {
      if (!(await findSandbox(sandboxId))) throw new ApiError(404, "sandbox_not_found", "gone");
      const body = await api(`${sandboxPath(sandboxId)}/preview`);
      if (mySeq !== this.pollSeq || sandboxId !== this.sandboxId) return;
      const before = this.status;
      // "booting" with no run going and nothing to serve means: not started, and not about to.
      let status = body.status;
      if (status === "booting" && !this.share) status = this.generating ? "building" : "idle";
      this.setStatus(status);
      this.setLog(body.logTail || "");
      if (body.status === "ready") {
        next = this.generating ? FAST_POLL_MS : SLOW_POLL_MS;
        if (before !== "ready" && this.share && !this.generating) this.loadFrame();
      } else if (body.status === "stopped" || body.status === "crashed") {
        next = SLOW_POLL_MS;
      }
    } catch (err) {
      if (mySeq !== this.pollSeq || sandboxId !== this.sandboxId) return;
      if (err instanceof ApiError && err.status === 404) {
        this.setStatus("deleted");
        this.render();
        return; // nothing left to poll
      }
      next = SLOW_POLL_MS;
    }
    this.render();
    this.schedule(next);
  }

  setLog(text) {
    const atBottom = this.logTail.scrollHeight - this.logTail.scrollTop - this.logTail.clientHeight < 24;
    if (this.logTail.textContent !== text) {
      this.logTail.textContent = text;
      if (atBottom) this.logTail.scrollTop = this.logTail.scrollHeight;
    }
    this.logsUpdated.textContent = `updated ${new Date().toLocaleTimeString()}`;
  }

  overlayContent(icon, tone, title, text, extra = []) {
    const ico = h("div", { class: `big-ico ${tone || ""}` });
    ico.innerHTML = ICONS[icon];
    this.overlayInner.replaceChildren(ico, h("h3", {}, title), text ? h("p", {}, text) : null, ...extra);
    this.overlay.dataset.kind = title;
  }

  render() {
    const s = this.status;
    if (s === "deleted" && this.rebuilding) {
      this.overlay.hidden = false;
      this.overlayContent("hammer", "", "Rebuilding the sandbox", "sandforge is restoring the saved files into a new sandbox and starting the dev server.", [
        h("div", { class: "skeleton", "aria-hidden": "true" }, h("span"), h("span"), h("span")),
      ]);
      return;
    }
    if (s === "deleted") {
      this.overlay.hidden = false;
      if (!this.share) {
        this.overlayContent("screen", "", "No preview", "The run ended before the app was ready, and its sandbox was cleaned up. Send a follow-up or try again.");
      } else if (this.projectId) {
        const rebuild = h("button", { type: "button", class: "btn btn-primary", onclick: () => this.rebuild() }, "Rebuild preview");
        this.overlayContent("trash", "warn", "This sandbox is gone", "The project's files are saved: sandforge can rebuild the sandbox at the same preview link.", [rebuild]);
      } else {
        this.overlayContent("trash", "bad", "This sandbox was deleted", "Its files and preview are gone. Start a new project to build it again.");
      }
      return;
    }
    if (s === "stopped") {
      this.overlay.hidden = false;
      const start = h("button", { type: "button", class: "btn btn-primary", onclick: () => this.startSandbox(start) }, "Start sandbox");
      this.overlayContent("pause", "warn", "This sandbox is stopped", "Start it again to bring the preview back.", [start]);
      return;
    }
    if (s === "crashed" && !this.generating) {
      this.overlay.hidden = false;
      const tail = this.logTail.textContent.trim().split("\n").slice(-8).join("\n");
      this.overlayContent("alert", "bad", "The dev server crashed", "It exited. Its last lines:", [
        tail ? h("pre", {}, tail) : null,
        h("div", { class: "actions" }, h("button", { type: "button", class: "btn btn-sm", onclick: () => this.onShowLogs() }, "Open logs")),
      ]);
      return;
    }
    if (this.share && this.frameLoaded && !this.generating) {
      this.overlay.hidden = true;
      return;
    }
    if (this.share && this.frameLoaded && this.generating) {
      // Keep showing the last version while the next one is built.
      this.overlay.hidden = true;
      return;
    }
    this.overlay.hidden = false;
    if (this.generating || (this.share && !this.frameLoaded)) {
      const msg = this.share ? "Loading the preview…" : this.phaseMessage || "The agent is writing your app.";
      this.overlayContent("hammer", "", this.share ? "Loading preview" : "Building your app", msg, [
        h("div", { class: "skeleton", "aria-hidden": "true" }, h("span"), h("span"), h("span")),
      ]);
      return;
    }
    if (this.sandboxId && !this.share) {
      const open = h("button", { type: "button", class: "btn btn-sm", onclick: () => this.onShowLogs() }, "Open logs");
      this.overlayContent("screen", "", "No preview link yet", "The last run did not finish with a preview. Send a follow-up to try again.", [h("div", { class: "actions" }, open)]);
      return;
    }
    this.overlayContent("screen", "", "Your preview appears here", "Once the dev server is up, the app loads in this frame.");
  }

  rebuild() {
    // Visiting the project's preview URL rebuilds its sandbox from the stored files.
    this.rebuilding = true;
    this.render();
    this.loadFrame();
  }

  async startSandbox(button) {
    button.disabled = true;
    button.textContent = "Starting…";
    try {
      await api(`${sandboxPath(this.sandboxId)}/start`, { method: "POST" });
      toast("Sandbox started", "ok");
      this.setStatus("booting");
      this.loadFrame(); // the project's preview URL starts the dev server again
      this.poll();
    } catch (err) {
      toast(err.message, "error", 6000);
      button.disabled = false;
      button.textContent = "Start sandbox";
    }
  }

  stop() {
    clearTimeout(this.timer);
    this.sandboxId = null;
  }
}
