// /sandboxes: list every sandbox with its state, age and preview link; stop, start, delete.
import { api, sandboxPath, shareUrl } from "./api.js";
import { $, h, duration, toast } from "./dom.js";

const REFRESH_MS = 5000;
const AGE_TICK_MS = 1000;
const BUSY_LABEL = { stop: "Stopping…", start: "Starting…", delete: "Deleting…" };

class SandboxesPage {
  constructor() {
    this.tbody = $("#sandboxes tbody");
    this.table = $("#sandboxes");
    this.empty = $("#empty");
    this.stats = $("#stats");
    this.dialog = $("#confirm-dialog");
    this.sandboxes = [];
    this.projects = new Map(); // project id -> project
    this.fetchedAt = 0;
    this.timer = null;
    this.signature = "";
    this.busy = new Set();

    setInterval(() => this.tickAges(), AGE_TICK_MS);
    document.addEventListener("visibilitychange", () => {
      if (!document.hidden) this.load();
    });
    $("#refresh-btn").addEventListener("click", () => this.load());
  }

  ageOf(sandbox) {
    return sandbox.ageSeconds + (Date.now() - this.fetchedAt) / 1000;
  }

  projectOf(sandbox) {
    return this.projects.get(sandbox.projectId) || null;
  }

  /** The link that opens the preview: the project's stable share link, else the sandbox's own URL. */
  previewOf(sandbox) {
    const project = this.projectOf(sandbox);
    if (project) return { url: shareUrl(project.previewUrl, project.accessToken), label: project.previewUrl };
    return { url: sandbox.previewUrl, label: sandbox.previewUrl };
  }

  confirmDelete(id) {
    return new Promise((resolve) => {
      $("#confirm-text").textContent = `Sandbox ${id} and all its files will be deleted. Its preview link stops working. This cannot be undone.`;
      this.dialog.returnValue = "";
      this.dialog.addEventListener("close", () => resolve(this.dialog.returnValue === "confirm"), { once: true });
      this.dialog.showModal();
    });
  }

  async act(sandbox, action, button) {
    if (action === "delete" && !(await this.confirmDelete(sandbox.id))) return;
    this.busy.add(sandbox.id);
    button.disabled = true;
    const label = button.textContent;
    button.replaceChildren(h("span", { class: "spinner", "aria-hidden": "true" }), BUSY_LABEL[action]);
    const row = button.closest("tr");
    try {
      if (action === "delete") {
        await api(sandboxPath(sandbox.id), { method: "DELETE" });
        row?.classList.add("leaving");
        toast(`Deleted ${sandbox.id}`, "ok");
      } else {
        await api(`${sandboxPath(sandbox.id)}/${action}`, { method: "POST" });
        toast(action === "stop" ? `Stopped ${sandbox.id}` : `Started ${sandbox.id}`, "ok");
      }
    } catch (err) {
      toast(err.message, "error", 6000);
      button.textContent = label;
      button.disabled = false;
    } finally {
      this.busy.delete(sandbox.id);
      await this.load();
    }
  }

  row(sandbox) {
    const started = sandbox.state === "started";
    const { url, label } = this.previewOf(sandbox);
    const project = this.projectOf(sandbox);
    const page = project?.flow === "persistent" ? "/create" : "/create-daytona";
    const busy = this.busy.has(sandbox.id);
    const toggle = h("button", { type: "button", class: "btn btn-sm", "aria-label": `${started ? "Stop" : "Start"} ${sandbox.id}`, disabled: busy }, started ? "Stop" : "Start");
    toggle.addEventListener("click", () => this.act(sandbox, started ? "stop" : "start", toggle));
    const del = h("button", { type: "button", class: "btn btn-sm btn-danger", "aria-label": `Delete ${sandbox.id}`, disabled: busy }, "Delete");
    del.addEventListener("click", () => this.act(sandbox, "delete", del));
    const openProject = project ? h("a", { class: "btn btn-sm btn-ghost", href: `${page}?project=${encodeURIComponent(project.id)}`, "aria-label": `Open the project of ${sandbox.id}` }, "Project") : null;
    const actions = h("div", { class: "row-actions" }, openProject, toggle, del);
    const name = project ? project.name || project.id : null;
    return h(
      "tr",
      { dataset: { id: sandbox.id, state: sandbox.state } },
      h("td", {}, h("div", { class: "sb-id" }, sandbox.id), h("div", { class: "sb-name" }, [name, sandbox.provider].filter(Boolean).join(" · "))),
      h("td", {}, h("span", { class: "badge", dataset: { status: sandbox.state } }, sandbox.state)),
      h("td", { class: "num", dataset: { age: "" } }, duration(this.ageOf(sandbox))),
      h("td", {}, h("a", { class: "sb-link", href: url, target: "_blank", rel: "noopener", title: project ? "Opens the preview with its access token" : "A sandbox without a project: its preview may be private" }, label)),
      h("td", {}, actions),
    );
  }

  render() {
    // Re-render only when something changed, so keyboard focus survives the auto-refresh.
    const next = JSON.stringify(this.sandboxes.map((s) => [s.id, s.state, this.previewOf(s).url, this.projectOf(s)?.name, this.busy.has(s.id)]));
    if (next === this.signature) return;
    this.signature = next;
    const running = this.sandboxes.filter((s) => s.state === "started").length;
    const stat = (count, label) => h("div", { class: "stat" }, h("b", {}, String(count)), h("span", {}, label));
    this.stats.replaceChildren(stat(this.sandboxes.length, this.sandboxes.length === 1 ? "sandbox" : "sandboxes"), stat(running, "running"), stat(this.sandboxes.length - running, "stopped"));
    this.empty.hidden = this.sandboxes.length > 0;
    this.table.hidden = this.sandboxes.length === 0;
    this.tbody.replaceChildren(...this.sandboxes.map((s) => this.row(s)));
  }

  tickAges() {
    for (const cell of this.tbody.querySelectorAll("td[data-age]")) {
      const sandbox = this.sandboxes.find((s) => s.id === cell.closest("tr").dataset.id);
      if (sandbox) cell.textContent = duration(this.ageOf(sandbox));
    }
  }

  async load() {
    clearTimeout(this.timer);
    try {
      const [{ sandboxes }, { projects }] = await Promise.all([api("/api/sandboxes"), api("/api/projects")]);
      this.fetchedAt = Date.now();
      this.sandboxes = sandboxes.sort((a, b) => b.createdAt - a.createdAt);
      this.projects = new Map(projects.map((p) => [p.id, p]));
      this.render();
    } catch (err) {
      this.signature = "";
      this.tbody.replaceChildren(h("tr", {}, h("td", { colspan: "5", class: "muted" }, `Could not load sandboxes: ${err.message}`)));
    }
    if (!document.hidden) this.timer = setTimeout(() => this.load(), REFRESH_MS);
  }
}

new SandboxesPage().load();
