// The History tab: one entry per version (a run's prompt, a manual edit, a restore), with the
// files it changed, the rendered check's screenshot, its diff, and Restore / Undo.
// GET /api/projects/{id}/timeline; a restore is itself a version, so every restore can be undone.
import { api, projectPath } from "./api.js";
import { $, h, ago, toast } from "./dom.js";

const KIND_LABEL = { run: "Run", edit: "Edited by hand", restore: "Restore" };

export class Timeline {
  /**
   * @param {object} opts
   * @param {(version: number) => void} opts.onRestored  a restore made here saved `version`
   * @param {() => boolean} opts.busy  a run is changing the project: restoring must wait
   */
  constructor({ onRestored, busy }) {
    this.onRestored = onRestored;
    this.busy = busy;
    this.list = $("#timeline-list");
    this.count = $("#history-count");
    this.projectId = null;
    this.versions = [];
    this.openDiff = null; // the version whose diff is shown
    this.loadSeq = 0;
  }

  setProject(projectId) {
    if (projectId === this.projectId) return;
    this.projectId = projectId;
    this.versions = [];
    this.openDiff = null;
    this.refresh();
  }

  get current() {
    return this.versions.at(-1)?.number || null;
  }

  async refresh() {
    if (!this.projectId) return this.render();
    const seq = ++this.loadSeq;
    try {
      const body = await api(`${projectPath(this.projectId)}/timeline`);
      if (seq !== this.loadSeq) return;
      this.versions = body.versions;
    } catch (err) {
      if (seq !== this.loadSeq) return;
      if (!this.versions.length) this.list.replaceChildren(h("li", { class: "empty-note" }, `History unavailable: ${err.message}`));
      return;
    }
    this.render();
  }

  async restore(number, { undo = false } = {}) {
    if (this.busy()) {
      toast("A run is changing the project: wait for it to finish, or stop it, then restore.", "error", 5000);
      return;
    }
    let saved;
    try {
      saved = await api(`${projectPath(this.projectId)}/versions/${number}/restore`, { method: "POST" });
    } catch (err) {
      toast(`Could not restore version ${number}: ${err.message}`, "error", 6000);
      return;
    }
    toast(undo ? `Undone: back to version ${number} (saved as version ${saved.number})` : `Restored version ${number} as version ${saved.number}`, "ok");
    await this.refresh();
    this.onRestored(saved.number);
  }

  async toggleDiff(entry, box, button) {
    if (this.openDiff === entry.number) {
      this.openDiff = null;
      box.replaceChildren();
      box.hidden = true;
      button.setAttribute("aria-expanded", "false");
      return;
    }
    this.openDiff = entry.number;
    button.setAttribute("aria-expanded", "true");
    box.hidden = false;
    box.replaceChildren(h("span", { class: "spinner", "aria-label": "Loading" }));
    const from = entry.number - 1;
    try {
      const diff = from >= 1 ? await api(`${projectPath(this.projectId)}/diff?from=${from}&to=${entry.number}`) : null;
      box.replaceChildren(...renderDiff(diff, entry));
    } catch (err) {
      box.replaceChildren(h("p", { class: "muted" }, `Could not load the diff: ${err.message}`));
    }
  }

  render() {
    this.count.hidden = this.versions.length === 0;
    this.count.textContent = String(this.versions.length);
    if (!this.versions.length) {
      this.list.replaceChildren(h("li", { class: "empty-note" }, "No versions yet: each finished run, manual edit or restore saves one."));
      return;
    }
    const now = Date.now() / 1000;
    this.openDiff = null; // a redraw closes the diffs: the versions they compared may have moved on
    const newestFirst = [...this.versions].reverse();
    this.list.replaceChildren(...newestFirst.map((entry) => this.renderEntry(entry, now)));
  }

  renderEntry(entry, now) {
    const current = entry.number === this.current;
    const diffBox = h("div", { class: "tl-diff", hidden: true });
    const diffBtn = h("button", { type: "button", class: "btn btn-sm btn-ghost", "aria-expanded": "false", onclick: () => this.toggleDiff(entry, diffBox, diffBtn) }, "Diff");
    const actions = [diffBtn];
    if (!current) {
      actions.push(h("button", { type: "button", class: "btn btn-sm", onclick: () => this.restore(entry.number) }, "Restore"));
    } else if (entry.kind !== "run" && entry.number > 1) {
      // The newest change was not a run: undo it by restoring what came before.
      actions.push(h("button", { type: "button", class: "btn btn-sm", onclick: () => this.restore(entry.number - 1, { undo: true }) }, "Undo"));
    }
    const title = entry.prompt || entry.message;
    return h(
      "li",
      { class: "tl-entry", dataset: { version: entry.number, kind: entry.kind }, "aria-current": current ? "true" : null },
      h(
        "div",
        { class: "tl-head" },
        h("span", { class: "tl-num" }, `v${entry.number}`),
        h("span", { class: "tl-kind", dataset: { kind: entry.kind } }, KIND_LABEL[entry.kind] || entry.kind),
        current ? h("span", { class: "badge", dataset: { status: "ready" } }, "current") : null,
        h("span", { class: "spacer" }),
        h("time", { class: "muted", datetime: new Date(entry.createdAt * 1000).toISOString() }, ago(now - entry.createdAt)),
      ),
      h(
        "div",
        { class: "tl-body" },
        entry.screenshot ? h("img", { class: "tl-shot", src: entry.screenshot, alt: `Screenshot of version ${entry.number}`, loading: "lazy", width: "96", height: "60" }) : null,
        h("div", { class: "tl-main" }, h("p", { class: "tl-prompt", title }, title), renderChanges(entry.changes)),
      ),
      h("div", { class: "tl-actions" }, actions),
      diffBox,
    );
  }
}

function renderChanges(changes) {
  if (!changes.length) return h("p", { class: "muted tl-nochange" }, "No file changed");
  return h(
    "ul",
    { class: "tl-files", "aria-label": "Files changed" },
    changes.map((c) =>
      h(
        "li",
        { dataset: { status: c.status } },
        h("span", { class: "tl-path" }, c.path),
        h("span", { class: "tl-add", "aria-label": `${c.added} lines added` }, `+${c.added}`),
        h("span", { class: "tl-del", "aria-label": `${c.removed} lines removed` }, `−${c.removed}`),
      ),
    ),
  );
}

/** A unified diff, line by line; the first version is shown as what it added. */
function renderDiff(diff, entry) {
  if (!diff) return [h("p", { class: "muted" }, `The first version: ${entry.changes.length} files added.`)];
  if (!diff.files.length) return [h("p", { class: "muted" }, "No differences from the version before.")];
  return diff.files.map((file) =>
    h(
      "details",
      { class: "tl-file-diff", open: true },
      h("summary", {}, `${file.path} (${file.status})`),
      h(
        "pre",
        { class: "diff" },
        file.diff
          .split("\n")
          .filter((line) => !line.startsWith("---") && !line.startsWith("+++"))
          .map((line) => h("span", { class: line.startsWith("+") ? "add" : line.startsWith("-") ? "del" : line.startsWith("@@") ? "hunk" : "ctx" }, line || " ")),
      ),
    ),
  );
}
