// The model picker: the models GET /api/models lists (the configured one and the allowed
// ones). On the start form it chooses the new project's model; in a project it is saved as the
// project's choice (PATCH /api/projects/{id}), which its follow-ups then use.
import { api, projectPath } from "./api.js";
import { $, h, toast } from "./dom.js";

export class ModelPicker {
  constructor() {
    this.selects = [$("#model-start"), $("#model-followup")];
    this.models = [];
    this.projectId = null;
    this.value = "";
    for (const select of this.selects) select.addEventListener("change", () => this.choose(select.value));
  }

  async load() {
    try {
      const body = await api("/api/models");
      this.models = body.models;
    } catch {
      return; // the picker stays hidden; runs use the server's model
    }
    this.value = this.value || this.defaultName;
    for (const select of this.selects) {
      select.replaceChildren(
        ...this.models.map((m) =>
          h("option", { value: m.name, disabled: Boolean(m.problem), title: m.problem || (m.readsImages ? "Reads images" : "Text only") }, m.default ? `${m.name} (default)` : m.name),
        ),
      );
      select.closest(".model-field").hidden = false;
      select.disabled = this.models.length < 2;
    }
    this.render();
  }

  get defaultName() {
    return this.models.find((m) => m.default)?.name || "";
  }

  /** The model a new project asks for; null for the server's default. */
  get requested() {
    return this.value && this.value !== this.defaultName ? this.value : null;
  }

  /** Whether the chosen model reads images (unknown models: no). */
  get readsImages() {
    return Boolean(this.models.find((m) => m.name === this.value)?.readsImages);
  }

  /** The open project and its own choice (null: the server's default). */
  setProject(project) {
    if (!project || project.id === this.projectId) return;
    this.projectId = project.id;
    this.value = project.model || this.defaultName;
    this.render();
  }

  async choose(name) {
    const before = this.value;
    this.value = name;
    this.render();
    if (!this.projectId) return;
    try {
      await api(projectPath(this.projectId), { method: "PATCH", body: { model: name === this.defaultName ? "" : name } });
      toast(`This project's next runs use ${name}`, "ok");
    } catch (err) {
      this.value = before;
      this.render();
      toast(`Could not choose ${name}: ${err.message}`, "error", 6000);
    }
  }

  render() {
    for (const select of this.selects) if (this.value) select.value = this.value;
  }
}
