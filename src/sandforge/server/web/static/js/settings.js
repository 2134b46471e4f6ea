// A project's settings: its sandbox's resources and egress, and its app's environment.
// Values of variables go to the server once and are never shown back (it lists names only).
import { api, projectPath } from "./api.js";
import { $, h, toast } from "./dom.js";

const FIELDS = [
  ["cpu", "#set-cpu", Number],
  ["memoryMb", "#set-memory", (v) => Math.round(Number(v))],
  ["diskMb", "#set-disk", (v) => Math.round(Number(v))],
];

export class SettingsDialog {
  constructor() {
    this.dialog = $("#settings-dialog");
    this.button = $("#settings-btn");
    this.envList = $("#env-list");
    this.error = $("#settings-error");
    this.projectId = null;
    this.loaded = null; // the settings as the server last answered
    this.removed = new Set();
    this.button.addEventListener("click", () => this.open());
    this.dialog.addEventListener("click", (event) => {
      if (event.target === this.dialog || event.target.closest("[data-close]")) this.dialog.close();
    });
    $("#settings-form").addEventListener("submit", (event) => {
      event.preventDefault();
      this.save();
    });
  }

  setProject(projectId) {
    this.projectId = projectId;
    this.button.disabled = !projectId;
  }

  async open() {
    this.error.textContent = "";
    this.removed.clear();
    $("#env-name").value = "";
    $("#env-value").value = "";
    try {
      this.loaded = await api(`${projectPath(this.projectId)}/settings`);
    } catch (err) {
      toast(err.message, "error");
      return;
    }
    for (const [key, selector] of FIELDS) $(selector).value = this.loaded.sandbox[key] ?? "";
    $("#set-egress").checked = Boolean(this.loaded.sandbox.egress);
    this.renderEnv();
    this.dialog.showModal();
  }

  renderEnv() {
    const names = this.loaded.env.filter((name) => !this.removed.has(name));
    this.envList.replaceChildren(
      ...names.map((name) =>
        h("li", {}, h("span", {}, name), h("button", { type: "button", class: "btn btn-sm btn-ghost", onclick: () => { this.removed.add(name); this.renderEnv(); } }, "Remove")),
      ),
    );
  }

  body() {
    const sandbox = {};
    for (const [key, selector, parse] of FIELDS) {
      const raw = $(selector).value.trim();
      if (raw !== "") sandbox[key] = parse(raw);
    }
    if ($("#set-egress").checked) sandbox.egress = true;
    const env = {};
    for (const name of this.removed) env[name] = null;
    const name = $("#env-name").value.trim();
    if (name) env[name] = $("#env-value").value;
    const body = {};
    const before = { ...this.loaded.sandbox };
    if (before.egress === false) delete before.egress;
    if (JSON.stringify(sandbox) !== JSON.stringify(before)) body.sandbox = sandbox;
    if (Object.keys(env).length) body.env = env;
    return body;
  }

  async save() {
    const body = this.body();
    if (!Object.keys(body).length) {
      this.dialog.close();
      return;
    }
    try {
      this.loaded = await api(`${projectPath(this.projectId)}/settings`, { method: "PUT", body });
      toast(body.sandbox ? "Saved: the sandbox is rebuilt with these settings" : "Saved", "ok");
      this.dialog.close();
    } catch (err) {
      this.error.textContent = err.message;
    }
  }
}
