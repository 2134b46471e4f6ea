// Shipping a project out: its zip, its published URL, its GitHub repository, its cost.
import { projectPath } from "./api.js";
import { $ } from "./dom.js";

export class ShipBar {
  constructor() {
    this.download = $("#download-zip");
    this.projectId = null;
    this.built = false;
  }

  /** The project shown, and whether it has a saved version to ship. */
  setProject(projectId, built) {
    this.projectId = projectId;
    this.built = built;
    this.render();
  }

  render() {
    const ready = Boolean(this.projectId && this.built);
    if (ready) this.download.href = `${projectPath(this.projectId)}/export.zip`;
    else this.download.removeAttribute("href");
    this.download.setAttribute("aria-disabled", String(!ready));
    this.download.tabIndex = ready ? 0 : -1;
  }
}
