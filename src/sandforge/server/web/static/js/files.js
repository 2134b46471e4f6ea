// The Code tab: a file tree of the project and an editor for one file (editor.js).
// Files come from the live sandbox while there is one, else from the project's saved version;
// a save goes through the project, which writes it where the project runs.
import { api, filePath, projectPath, sandboxPath } from "./api.js";
import { $, h, copyText, formatBytes, toast } from "./dom.js";
import { languageOf, isBinaryPath, LANGUAGE_BADGE, LANGUAGE_NAME } from "./languages.js";
import { CodeEditor } from "./editor.js";

const MAX_VIEW_BYTES = 512 * 1024;
const MAX_OPEN_DEPTH = 3;
const ENTRY_FILES = ["index.html", "src/main.jsx", "src/main.js", "app.py", "main.py", "README.md"];

export class FilesPanel {
  /**
   * @param {object} opts
   * @param {string[]} opts.skippedDirs  the server's one list of folders a listing leaves out
   * @param {(files: number) => void} opts.onCount
   * @param {(saved: {number: number}) => void} opts.onSaved  a manual edit was saved as a version
   */
  constructor({ skippedDirs, onCount, onSaved }) {
    this.skippedDirs = new Set(skippedDirs);
    this.onCount = onCount;
    this.onSaved = onSaved;
    this.tree = $("#file-tree");
    this.pathEl = $("#code-path");
    this.metaEl = $("#code-meta");
    this.scroll = $("#code-scroll");
    this.copyBtn = $("#copy-code");
    this.saveBtn = $("#save-code");
    this.dirtyMark = $("#code-dirty");
    this.editor = new CodeEditor(this.scroll, { onSave: (text) => this.save(text), onDirty: (dirty) => this.showDirty(dirty) });
    this.saveBtn.addEventListener("click", () => this.editor.save());
    this.sandboxId = null;
    this.projectId = null;
    this.files = new Map(); // path -> {path, size, isDir}
    this.selected = null;
    this.content = "";
    this.expanded = new Map(); // dir -> bool
    this.changed = new Set();
    this.refreshTimer = null;
    this.openSeq = 0;
    this.copyBtn.addEventListener("click", async () => {
      const ok = await copyText(this.editor.text);
      toast(ok ? "File copied" : "Could not copy", ok ? "ok" : "error");
    });
  }

  /**
   * Where files come from: the live sandbox when there is one (null when it is stopped or
   * gone), else the project's saved files.
   */
  setSource({ sandboxId = null, projectId = null }) {
    if (sandboxId === this.sandboxId && projectId === this.projectId) return;
    const firstSource = !this.sandboxId && !this.projectId;
    this.sandboxId = sandboxId;
    this.projectId = projectId;
    this.sourceChanged = !firstSource;
    if (firstSource) {
      this.files.clear();
      this.selected = null;
      this.content = "";
      this.renderTree();
      this.showPlaceholder("Pick a file on the left to read it.");
    }
    if (this.base) this.refresh();
  }

  get base() {
    if (this.sandboxId) return sandboxPath(this.sandboxId);
    if (this.projectId) return projectPath(this.projectId);
    return null;
  }

  /**
   * GET under the current base. A sandbox can stop or vanish between two looks (a failed run's
   * sandbox is deleted): then the project's saved files are the truth, so read those.
   */
  async read(suffix, options) {
    const base = this.base;
    try {
      return await api(`${base}${suffix}`, options);
    } catch (err) {
      if (!this.sandboxId || !this.projectId || err.unreachable) throw err;
      return api(`${projectPath(this.projectId)}${suffix}`, options);
    }
  }

  cancelRefresh() {
    clearTimeout(this.refreshTimer);
  }

  /** A tool event touched `path`: refresh soon, and reload it if it is open. */
  touched(path) {
    this.changed.add(path);
    clearTimeout(this.refreshTimer);
    this.refreshTimer = setTimeout(() => this.refresh(), 350);
  }

  /** The files changed outside a run (a restore): list them again and reload the open one. */
  reload() {
    if (this.selected) this.changed.add(this.selected);
    return this.refresh();
  }

  async refresh() {
    clearTimeout(this.refreshTimer);
    const base = this.base;
    if (!base) return;
    let body;
    try {
      body = await this.read("/files");
    } catch (err) {
      if (base !== this.base) return;
      if (!this.files.size) this.tree.replaceChildren(h("p", { class: "code-empty" }, `Files unavailable: ${err.message}`));
      return;
    }
    if (base !== this.base) return;
    const shown = body.files.filter((f) => !f.path.split("/").some((part) => this.skippedDirs.has(part)));
    this.files = new Map(shown.map((f) => [f.path, f]));
    this.onCount(shown.filter((f) => !f.isDir).length);
    this.renderTree();
    const changed = [...this.changed];
    this.changed.clear();
    if (this.selected && changed.includes(this.selected)) this.open(this.selected, { quiet: true });
    if (this.selected && !this.files.has(this.selected)) {
      this.selected = null;
      this.showPlaceholder(this.sourceChanged ? "That file is not in the project's saved files." : "That file was deleted.");
    }
    this.sourceChanged = false;
  }

  emptyNote() {
    if (!this.base) return "No project open.";
    if (!this.sandboxId) return "No saved files yet: a version is saved each time a run finishes.";
    return "No files yet.";
  }

  /** Open the entry file if nothing is open yet (when the tab is first shown). */
  openDefault() {
    if (this.selected || !this.files.size) return;
    const paths = [...this.files.values()].filter((f) => !f.isDir).map((f) => f.path);
    const pick = ENTRY_FILES.find((p) => paths.includes(p)) || paths.sort()[0];
    if (pick) this.open(pick);
  }

  buildTree() {
    const root = { dirs: new Map(), files: [] };
    const dirNode = (parts) => {
      let node = root;
      for (const part of parts) {
        if (!node.dirs.has(part)) node.dirs.set(part, { dirs: new Map(), files: [] });
        node = node.dirs.get(part);
      }
      return node;
    };
    for (const f of this.files.values()) {
      const parts = f.path.split("/").filter(Boolean);
      if (f.isDir) dirNode(parts);
      else dirNode(parts.slice(0, -1)).files.push(f);
    }
    return root;
  }

  renderTree() {
    if (!this.files.size) {
      this.tree.replaceChildren(h("p", { class: "code-empty" }, this.emptyNote()));
      return;
    }
    const render = (node, prefix, depth) => {
      const ul = h("ul", {});
      for (const name of [...node.dirs.keys()].sort((a, b) => a.localeCompare(b))) {
        const path = prefix + name;
        const open = this.expanded.has(path) ? this.expanded.get(path) : depth < MAX_OPEN_DEPTH;
        const btn = h(
          "button",
          { type: "button", class: "tree-item dir", "aria-expanded": String(open), dataset: { path }, onclick: () => { this.expanded.set(path, !open); this.renderTree(); } },
          h("span", { class: "ti", "aria-hidden": "true" }, open ? "▾" : "▸"),
          h("span", { class: "name" }, name),
        );
        ul.append(h("li", {}, btn, open ? render(node.dirs.get(name), `${path}/`, depth + 1) : null));
      }
      for (const f of node.files.sort((a, b) => a.path.localeCompare(b.path))) {
        const name = f.path.split("/").pop();
        const lang = languageOf(f.path);
        const btn = h(
          "button",
          {
            type: "button",
            class: `tree-item file${this.changed.has(f.path) ? " flash" : ""}`,
            "aria-current": f.path === this.selected ? "true" : null,
            title: `${f.path} · ${formatBytes(f.size)}`,
            dataset: { path: f.path },
            onclick: () => this.open(f.path),
          },
          h("span", { class: "ti", "aria-hidden": "true" }),
          h("span", { class: "fi", dataset: { lang }, "aria-hidden": "true" }, LANGUAGE_BADGE[lang] || "≡"),
          h("span", { class: "name" }, name),
        );
        ul.append(h("li", {}, btn));
      }
      return ul;
    };
    this.tree.replaceChildren(render(this.buildTree(), "", 0));
  }

  showPlaceholder(text) {
    this.editor.detach();
    this.pathEl.textContent = this.selected || "Select a file";
    this.metaEl.textContent = "";
    this.copyBtn.disabled = true;
    this.scroll.replaceChildren(h("div", { class: "code-empty" }, text));
  }

  async open(path, { quiet = false } = {}) {
    if (!this.base) return;
    // A run or a restore changed the open file while the user edits it: keep their text.
    if (quiet && this.editor.dirty) return;
    if (!quiet && path !== this.selected && this.editor.dirty && !confirm(`Discard your unsaved changes to ${this.selected}?`)) return;
    this.selected = path;
    for (const b of this.tree.querySelectorAll(".tree-item.file")) {
      if (b.dataset.path === path) b.setAttribute("aria-current", "true");
      else b.removeAttribute("aria-current");
    }
    const entry = this.files.get(path);
    const lang = languageOf(path);
    this.pathEl.textContent = path;
    this.pathEl.title = path;
    if (isBinaryPath(path)) {
      this.showPlaceholder("Binary file: not shown.");
      this.pathEl.textContent = path;
      return;
    }
    if (entry && entry.size > MAX_VIEW_BYTES) {
      this.showPlaceholder(`This file is ${formatBytes(entry.size)}; too large to show here.`);
      this.pathEl.textContent = path;
      return;
    }
    const seq = ++this.openSeq;
    if (!quiet) {
      this.editor.detach();
      this.scroll.replaceChildren(h("div", { class: "code-empty" }, h("span", { class: "spinner", "aria-label": "Loading" })));
    }
    let text;
    try {
      text = await this.read(filePath("", path), { headers: { accept: "text/plain" } });
    } catch (err) {
      if (seq !== this.openSeq) return;
      this.showPlaceholder(`Could not read ${path}: ${err.message}`);
      this.pathEl.textContent = path;
      return;
    }
    if (seq !== this.openSeq) return;
    this.content = typeof text === "string" ? text : JSON.stringify(text, null, 2);
    const lines = this.content ? this.content.split("\n").length - (this.content.endsWith("\n") ? 1 : 0) : 0;
    this.metaEl.textContent = `${LANGUAGE_NAME[lang] || lang} · ${lines} lines · ${formatBytes(new Blob([this.content]).size)}`;
    this.copyBtn.disabled = false;
    this.editor.show(this.content, lang, { editable: Boolean(this.projectId), keepScroll: quiet });
  }

  showDirty(dirty) {
    this.saveBtn.disabled = !dirty || this.saving;
    this.dirtyMark.hidden = !dirty;
  }

  /** Save the open file as the user edited it: a new version, marked as a manual edit. */
  async save(text) {
    const path = this.selected;
    if (!path || !this.projectId || this.saving) return;
    this.saving = true;
    this.saveBtn.disabled = true;
    this.saveBtn.setAttribute("aria-busy", "true");
    try {
      const saved = await api(filePath(projectPath(this.projectId), path), { method: "PUT", body: { content: text } });
      if (path === this.selected) {
        this.content = text;
        this.editor.markSaved(text);
      }
      toast(`Saved ${path} as version ${saved.number}`, "ok");
      this.onSaved(saved);
    } catch (err) {
      toast(`Could not save ${path}: ${err.message}`, "error", 6000);
    } finally {
      this.saving = false;
      this.saveBtn.removeAttribute("aria-busy");
      this.showDirty(this.editor.dirty);
    }
  }
}
