// Push a project's history to GitHub (the server holds the token; the page never sees it).
import { api, projectPath } from "./api.js";
import { $, h } from "./dom.js";

export class GitHubDialog {
  constructor() {
    this.dialog = $("#github-dialog");
    this.button = $("#github-btn");
    this.result = $("#github-result");
    this.error = $("#github-error");
    this.pushBtn = $("#github-push");
    this.projectId = null;
    this.button.addEventListener("click", () => this.open());
    this.dialog.addEventListener("click", (event) => {
      if (event.target === this.dialog || event.target.closest("[data-close]")) this.dialog.close();
    });
    $("#github-form").addEventListener("submit", (event) => {
      event.preventDefault();
      this.push();
    });
  }

  setProject(projectId, built) {
    this.projectId = projectId;
    this.button.disabled = !(projectId && built);
  }

  open() {
    this.error.textContent = "";
    this.result.replaceChildren();
    this.dialog.showModal();
  }

  async push() {
    this.error.textContent = "";
    this.pushBtn.disabled = true;
    this.pushBtn.textContent = "Pushing…";
    try {
      const body = { repo: $("#github-repo").value.trim(), private: $("#github-private").checked };
      const pushed = await api(`${projectPath(this.projectId)}/github`, { method: "POST", body });
      const what = pushed.pushedVersions.length ? `versions ${pushed.pushedVersions.join(", ")}` : "nothing new";
      this.result.replaceChildren(
        `${pushed.created ? "Created and pushed" : "Pushed"} ${pushed.repo}: ${what}. `,
        pushed.url ? h("a", { href: pushed.url, target: "_blank", rel: "noopener" }, "Open on GitHub ↗") : "",
      );
    } catch (err) {
      this.error.textContent = err.message;
    } finally {
      this.pushBtn.disabled = false;
      this.pushBtn.textContent = "Push";
    }
  }
}
