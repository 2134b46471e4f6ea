// The preview panel: iframe, share link, status badge (polled) and the dev server's log tail.
//
// One rule keeps the badge, the overlay and the share link from contradicting each other:
// the link and the frame are shown once there is something to show (a finished version, a
// dev server that answers, or a run's live preview), and everything on the panel is drawn from
// the same state. While a run writes, the frame shows the app live ("updating"): the dev server
// updates it (Vite's HMR) or the proxy's reload helper, injected into this frame only, reloads it.
import { api, projectPath, sandboxPath, shareUrl } from "./api.js";
import { $, h, copyText, toast } from "./dom.js";

const FAST_POLL_MS = 1500;
const SLOW_POLL_MS = 5000;
// Asks the preview proxy to treat this iframe as the editor's (it adds the live-reload helper).
const EDITOR_FRAME = ["sandforge-frame", "editor"];

const ICONS = {
  screen: '<svg viewBox="0 0 24 24"><rect x="3" y="4" width="18" height="16" rx="2"/><path d="M3 9h18M7 6.5h.01M10 6.5h.01"/></svg>',
  hammer: '<svg viewBox="0 0 24 24"><path d="m15 12-8.5 8.5a2.1 2.1 0 0 1-3-3L12 9"/><path d="M17.6 15 22 10.6M20.9 11.7l-5.8-5.8a3 3 0 0 0-2.1-.9H9l.9.9a6 6 0 0 1 1.7 4.2v1.4l2 2h1.3a3 3 0 0 1 1.8.6"/></svg>',
  alert: '<svg viewBox="0 0 24 24"><path d="M12 9v4M12 17h.01"/><path d="M10.3 3.9 1.8 18a2 2 0 0 0 1.7 3h17a2 2 0 0 0 1.7-3L13.7 3.9a2 2 0 0 0-3.4 0z"/></svg>',
  pause: '<svg viewBox="0 0 24 24"><circle cx="12" cy="12" r="9"/><path d="M10 9v6M14 9v6"/></svg>',
  trash: '<svg viewBox="0 0 24 24"><path d="M3 6h18M8 6V4h8v2M19 6l-1 14H6L5 6"/></svg>',
  unplug: '<svg viewBox="0 0 24 24"><path d="m19 5 3-3M2 22l3-3M6.3 20.3a2.4 2.4 0 0 0 3.4 0L12 18l-6-6-2.3 2.3a2.4 2.4 0 0 0 0 3.4zM7.5 13.5 10 11M10.5 16.5 13 14M12 6l6 6 2.3-2.3a2.4 2.4 0 0 0 0-3.4l-2.6-2.6a2.4 2.4 0 0 0-3.4 0z"/></svg>',
};

export class PreviewPanel {
  /**
   * @param {object} opts
   * @param {import("./connection.js").ServerConnection} opts.connection
   * @param {boolean} opts.staticFiles  the persistent flow: served from stored files, no dev server
   * @param {() => void} opts.onShowLogs
   * @param {(sandboxId: string|null, running: boolean) => void} opts.onSandbox  what the poll saw (null: gone)
   */
  constructor({ connection, staticFiles, onShowLogs, onSandbox }) {
    this.connection = connection;
    this.staticFiles = staticFiles;
    this.onShowLogs = onShowLogs;
    this.onSandbox = onSandbox;
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

    this.serviceTabs = $("#service-tabs");

    this.projectId = null;
    this.project = null;
    this.services = []; // [{name, port, previewUrl}], the main one first
    this.service = null; // the name of the service shown; null: the main one
    this.link = ""; // the shown service's share link; shown once there is something behind it
    this.built = false; // a run finished: the project has a version to serve
    this.serverStatus = "idle"; // the last poll: booting | ready | crashed | stopped | gone
    this.sandboxId = null;
    this.generating = false;
    this.live = false; // the run in progress serves its preview already: show it as it changes
    this.phaseMessage = "";
    this.frameLoaded = false;
    this.loadedLink = "";
    this.rebuilding = false;
    this.timer = null;
    this.pollSeq = 0;

    if (staticFiles) this.logTail.dataset.empty = "No dev server: this project's preview is served from its stored files.";
    this.copyBtn.addEventListener("click", () => this.copy());
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
      if (!this.frame.getAttribute("src")) return;
      this.frameLoaded = true;
      this.render();
    });
    document.addEventListener("visibilitychange", () => {
      if (!document.hidden) this.poll();
    });
    connection.addEventListener("change", (event) => {
      if (event.detail.online) {
        // The frame showed the browser's error page while the server was away.
        if (this.showsLink) this.loadFrame();
        this.poll();
      }
      this.render();
    });
  }

  /** The project whose preview this is: `{id, previewUrl, accessToken}`. */
  setProject(project) {
    this.project = project;
    this.services = project.services || [];
    if (project.id !== this.projectId) {
      this.projectId = project.id;
      this.service = null;
      this.logTail.textContent = "";
      this.poll();
    }
    this.link = shareUrl(this.shownService()?.previewUrl || project.previewUrl, project.accessToken);
    this.renderServiceTabs();
    this.syncFrame();
    this.render();
  }

  shownService() {
    return this.services.find((s) => s.name === this.service) || this.services[0] || null;
  }

  /** A project with several services (a frontend and its backend) gets a tab for each. */
  renderServiceTabs() {
    const shown = this.shownService();
    this.serviceTabs.hidden = this.services.length < 2;
    this.serviceTabs.replaceChildren(
      ...this.services.map((service) =>
        h(
          "button",
          {
            type: "button",
            role: "tab",
            "aria-selected": String(service === shown),
            "aria-pressed": String(service === shown),
            title: service.previewUrl,
            onclick: () => this.showService(service.name),
          },
          `${service.name} :${service.port}`,
        ),
      ),
    );
  }

  showService(name) {
    if (name === this.shownService()?.name) return;
    this.service = name;
    this.serverStatus = "booting";
    this.logTail.textContent = "";
    this.setProject(this.project);
    this.loadFrame();
    this.poll();
  }

  /** Whether the project has a finished version (so its link serves something). */
  setBuilt(built) {
    this.built = built;
    this.syncFrame();
    this.render();
  }

  /** A run is (or is no longer) working on this project. */
  setGenerating(generating, message = "") {
    this.generating = generating;
    if (!generating) this.live = false;
    if (message) this.phaseMessage = message;
    this.render();
    if (generating) this.schedule(FAST_POLL_MS);
  }

  /** The run in progress serves its preview already (the starter, or the last version). */
  showLive(previewUrl, accessToken) {
    this.live = true;
    this.link = shareUrl(previewUrl, accessToken);
    if (this.loadedLink !== this.link) this.loadFrame();
    else this.render();
  }

  /**
   * A run just finished a version: show it (afresh: no dev server overlay from mid-run stays).
   * A run's `complete` names its main service's link, which a first run's page may not know
   * yet (the project record it read predates the sandbox), nor its poll (which may still say
   * "gone"): the link shows with the run's card, not a poll later.
   */
  showVersion(previewUrl = "", accessToken = "") {
    this.built = true;
    if (previewUrl && !this.service) {
      this.link = shareUrl(previewUrl, accessToken);
      if (this.serverStatus === "gone") this.serverStatus = "booting";
    }
    this.loadFrame();
    this.render();
    this.poll();
  }

  /** The link works once a version exists or the dev server answers; before that it leads nowhere. */
  get showsLink() {
    if (this.live && this.link) return true;
    if (!this.link || this.serverStatus === "gone") return false;
    if (this.staticFiles) return this.built;
    return this.built || this.serverStatus === "ready";
  }

  /** What the badge says: one word for the state the rest of the panel shows. */
  get status() {
    if (!this.connection.online) return "offline";
    if (this.generating && this.live) return "updating";
    if (this.staticFiles) return this.showsLink ? "ready" : this.generating ? "building" : "idle";
    // A run is making what the poll cannot see yet (a first run's sandbox may not even exist).
    if (this.generating && !this.showsLink) return "building";
    // Nothing was ever built: whatever became of the sandbox, there is no preview to bring back.
    const down = this.serverStatus === "gone" || this.serverStatus === "stopped";
    if (down && !this.built) return "none";
    if (this.serverStatus === "gone") return this.rebuilding ? "rebuilding" : "gone";
    if (this.serverStatus === "stopped" || this.serverStatus === "crashed") return this.serverStatus;
    if (this.serverStatus === "ready" && this.showsLink) return "ready";
    return this.built ? "booting" : "idle";
  }

  /** Load the link once it serves something, unless the frame already shows it. */
  syncFrame() {
    const serving = this.staticFiles || this.serverStatus === "ready";
    if (this.showsLink && serving && this.loadedLink !== this.link) this.loadFrame();
  }

  loadFrame() {
    if (!this.showsLink) return;
    this.frameLoaded = false;
    this.loadedLink = this.link;
    // Assigning src (even the same value) navigates the frame again.
    const url = new URL(this.link);
    url.searchParams.set(...EDITOR_FRAME);
    this.frame.src = url.toString();
    this.render();
  }

  schedule(ms) {
    clearTimeout(this.timer);
    if (!this.projectId || this.staticFiles) return;
    this.timer = setTimeout(() => this.poll(), ms);
  }

  async poll() {
    clearTimeout(this.timer);
    const projectId = this.projectId;
    if (!projectId || this.staticFiles || document.hidden) return; // resumes on visibilitychange
    const mySeq = ++this.pollSeq;
    let body;
    try {
      const service = this.service ? `?service=${encodeURIComponent(this.service)}` : "";
      body = await api(`${projectPath(projectId)}/preview${service}`);
    } catch (err) {
      if (mySeq !== this.pollSeq || projectId !== this.projectId) return;
      if (err.unreachable) {
        this.connection.lost(); // its "online" event polls again
        this.render();
      } else {
        this.schedule(SLOW_POLL_MS);
      }
      return;
    }
    if (mySeq !== this.pollSeq || projectId !== this.projectId) return;
    const before = this.serverStatus;
    // "stopped" with no sandbox: the sandbox is gone (opening the link rebuilds it from the saved files).
    this.serverStatus = body.status === "stopped" && !body.sandboxId ? "gone" : body.status;
    // A rebuild is over once the project has a sandbox again.
    if (this.serverStatus !== "gone") this.rebuilding = false;
    this.sandboxId = body.sandboxId;
    this.onSandbox(body.sandboxId, body.status !== "stopped");
    this.setLog(body.logTail || "");
    // The dev server came back: whatever the frame showed meanwhile is stale. (A live frame
    // follows the run by itself; reloading it would lose what the app's page holds.)
    if (this.serverStatus === "ready" && before !== "ready" && this.loadedLink && !this.live) this.loadFrame();
    else this.syncFrame();
    this.render();
    const settled = this.serverStatus === "ready" || this.serverStatus === "stopped" || this.serverStatus === "crashed";
    this.schedule(settled && !this.generating ? SLOW_POLL_MS : FAST_POLL_MS);
  }

  setLog(text) {
    const atBottom = this.logTail.scrollHeight - this.logTail.scrollTop - this.logTail.clientHeight < 24;
    if (this.logTail.textContent !== text) {
      this.logTail.textContent = text;
      if (atBottom) this.logTail.scrollTop = this.logTail.scrollHeight;
    }
    this.logsUpdated.textContent = `updated ${new Date().toLocaleTimeString()}`;
  }

  async copy() {
    if (!this.showsLink) return;
    const ok = await copyText(this.link);
    this.copyBtn.textContent = ok ? "Copied" : "Copy failed";
    toast(ok ? "Share link copied" : "Could not copy; select the link and copy it", ok ? "ok" : "error");
    setTimeout(() => (this.copyBtn.textContent = "Copy"), 1600);
  }

  renderLink() {
    const url = this.showsLink ? this.link : "";
    this.urlInput.value = url;
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

  renderBadge() {
    const status = this.status;
    this.badge.dataset.status = status;
    this.badge.textContent = status;
    this.badge.setAttribute("aria-label", `Preview status: ${status}`);
  }

  overlayContent(icon, tone, title, text, extra = []) {
    const ico = h("div", { class: `big-ico ${tone}` });
    ico.innerHTML = ICONS[icon];
    this.overlayInner.replaceChildren(ico, h("h3", {}, title), text ? h("p", {}, text) : null, ...extra);
    this.overlay.dataset.kind = title;
    this.overlay.hidden = false;
  }

  render() {
    this.renderBadge();
    this.renderLink();
    const status = this.status;
    const skeleton = () => h("div", { class: "skeleton", "aria-hidden": "true" }, h("span"), h("span"), h("span"));
    if (status === "offline") {
      const retry = h("button", { type: "button", class: "btn btn-primary", onclick: () => this.connection.reconnectNow() }, "Reconnect now");
      this.overlayContent("unplug", "bad", "The sandforge server is not answering", "It may have stopped or restarted. The preview comes back as soon as the server answers again.", [retry]);
      return;
    }
    if (status === "rebuilding") {
      this.overlayContent("hammer", "", "Rebuilding the sandbox", "sandforge is restoring the saved files into a new sandbox and starting the dev server.", [skeleton()]);
      return;
    }
    if (status === "none") {
      this.overlayContent("screen", "", "No preview", "The run ended before the app was ready, so there is nothing to preview. Send a follow-up or try again.");
      return;
    }
    if (status === "gone") {
      const rebuild = h("button", { type: "button", class: "btn btn-primary", onclick: () => this.rebuild() }, "Rebuild preview");
      this.overlayContent("trash", "warn", "This sandbox is gone", "The project's files are saved: sandforge can rebuild the sandbox at the same preview link.", [rebuild]);
      return;
    }
    if (status === "stopped") {
      const start = h("button", { type: "button", class: "btn btn-primary", onclick: () => this.startSandbox(start) }, "Start sandbox");
      this.overlayContent("pause", "warn", "This sandbox is stopped", "Start it again to bring the preview back.", [start]);
      return;
    }
    if (status === "crashed" && !this.generating) {
      const tail = this.logTail.textContent.trim().split("\n").slice(-8).join("\n");
      this.overlayContent("alert", "bad", "The dev server crashed", "It exited. Its last lines:", [
        tail ? h("pre", {}, tail) : null,
        h("div", { class: "actions" }, h("button", { type: "button", class: "btn btn-sm", onclick: () => this.onShowLogs() }, "Open logs")),
      ]);
      return;
    }
    if (this.showsLink && this.frameLoaded) {
      // Also while a follow-up runs: the last version stays in view until the next one is ready.
      this.overlay.hidden = true;
      return;
    }
    if (this.showsLink) {
      this.overlayContent("hammer", "", "Loading preview", "Loading the preview…", [skeleton()]);
      return;
    }
    if (this.generating) {
      this.overlayContent("hammer", "", "Building your app", this.phaseMessage || "The agent is writing your app.", [skeleton()]);
      return;
    }
    if (this.projectId && !this.built) {
      const open = h("button", { type: "button", class: "btn btn-sm", onclick: () => this.onShowLogs() }, "Open logs");
      this.overlayContent("screen", "", "No preview yet", "The last run did not finish with a preview. Send a follow-up to try again.", [h("div", { class: "actions" }, open)]);
      return;
    }
    this.overlayContent("screen", "", "Your preview appears here", "Once the dev server is up, the app loads in this frame.");
  }

  rebuild() {
    // Visiting the project's preview URL rebuilds its sandbox from the stored files.
    this.rebuilding = true;
    this.serverStatus = "booting";
    this.loadFrame();
    this.schedule(FAST_POLL_MS);
  }

  async startSandbox(button) {
    button.disabled = true;
    button.textContent = "Starting…";
    try {
      await api(`${sandboxPath(this.sandboxId)}/start`, { method: "POST" });
      toast("Sandbox started", "ok");
      this.serverStatus = "booting";
      this.loadFrame(); // the project's preview URL starts the dev server again
      this.poll();
    } catch (err) {
      toast(err.message, "error", 6000);
      button.disabled = false;
      button.textContent = "Start sandbox";
    }
  }
}
