// One turn of the conversation: the user's prompt and everything the run streamed back.
import { h, brandAvatar } from "./dom.js";
import { renderMarkdown } from "./markdown.js";

export const STATUSES = ["creating", "initializing", "generating", "writing", "starting", "preview", "complete"];
const STATUS_LABEL = {
  creating: "Creating",
  initializing: "Initializing",
  generating: "Generating",
  writing: "Writing",
  starting: "Starting",
  preview: "Preview",
  complete: "Complete",
};
const VERB = { read: "Read", create: "Created", update: "Edited", delete: "Deleted", run: "Ran" };
const ICON = { read: "◎", create: "+", update: "~", delete: "−", run: "›" };

// The seed's Troubleshooting section, matched to the error that occurred.
const SEED_EXIT_STEPS = [
  "Check Anthropic API key is valid (or the key of the model in SANDFORGE_MODEL)",
  "Check Daytona API key is valid (when the Daytona provider is used)",
  "Check console logs for detailed error messages (the sandforge server's output)",
  "Verify network connectivity",
];
const SEED_PREVIEW_STEPS = [
  "Wait a few seconds - server may still be starting",
  "Check if sandbox was created successfully (see the Sandboxes page)",
  "Verify port 3000 is being used",
  "Try opening in a new tab",
];

export function troubleshoot(data) {
  const message = data.message || "";
  const code = data.code || "";
  if (/DAYTONA_API_KEY/.test(message)) {
    return { title: "Daytona is not configured", steps: ["Add DAYTONA_API_KEY to your .env file and restart the sandforge server."] };
  }
  if (code === "worker_exited" || /Generation process exited with code/.test(message)) {
    return { title: "The generation process stopped", steps: SEED_EXIT_STEPS };
  }
  if (code === "dev_server_failed" || /dev server/i.test(message)) {
    return { title: "The preview did not come up", steps: ["Read the dev server's log in the Logs tab", ...SEED_PREVIEW_STEPS] };
  }
  if (code === "cancelled") {
    return { title: "The run was stopped", steps: ["Send the prompt again to start over."] };
  }
  if (code === "missing_entry_file") {
    return { title: "Nothing to preview", steps: ["Try again, or ask for index.html explicitly in the prompt."] };
  }
  if (code === "lost_run" || code === "run_not_found") {
    return { title: "Lost track of the run", steps: ["Check that the sandforge server is running.", "Reopen the project from Projects to see what it produced."] };
  }
  if (code === "model_config" || /api[_ ]?key|authentication|unauthori[sz]ed|401/i.test(message)) {
    return { title: "The model could not be used", steps: ["Check Anthropic API key is valid (ANTHROPIC_API_KEY), or SANDFORGE_MODEL and its key", "Restart the sandforge server after changing .env"] };
  }
  if (/bwrap|bubblewrap|namespace/i.test(message)) {
    return { title: "The sandbox could not start", steps: ["Install bubblewrap (apt-get install bubblewrap) and allow unprivileged user namespaces", "Run `sandforge doctor` to check the set-up"] };
  }
  if (/network|connect|timed? ?out/i.test(message)) {
    return { title: "Something did not answer", steps: ["Verify network connectivity", "Check console logs for detailed error messages", "Try again"] };
  }
  return { title: "The generation failed", steps: ["Check console logs for detailed error messages (the sandforge server's output)", "Try again; if it keeps failing, rephrase the prompt"] };
}

export class TurnView {
  /**
   * @param {object} opts
   * @param {string} opts.prompt
   * @param {(path: string) => void} opts.onFileClick
   * @param {(turn: TurnView) => void} opts.onRetry
   * @param {(turn: TurnView) => void} opts.onOpenPreview
   */
  constructor({ prompt, onFileClick, onRetry, onOpenPreview }) {
    this.prompt = prompt;
    this.onFileClick = onFileClick;
    this.onRetry = onRetry;
    this.onOpenPreview = onOpenPreview;
    this.text = ""; // all assistant text of this turn
    this.status = null;
    this.complete = null;
    this.error = null;
    this.sandboxId = null;
    this.runId = null;
    this.events = 0;
    this.currentText = null; // {el, source}
    this.currentTools = null;
    this.renderQueued = false;

    this.stepTrack = h("ol", { class: "stepper-track", "aria-hidden": "true" }, STATUSES.map((s) => h("li", { class: "step", title: STATUS_LABEL[s], dataset: { status: s } })));
    this.stepCount = h("span", { class: "step-count" });
    this.stepIcon = h("span", { class: "spinner", "aria-hidden": "true" });
    this.stepName = h("span", { class: "step-name" }, "Starting");
    this.stepMsg = h("span", { class: "step-msg" }, "Sending your prompt…");
    this.stepper = h(
      "div",
      { class: "stepper", role: "group", "aria-label": "Progress" },
      h("div", { class: "stepper-now", role: "status" }, this.stepIcon, this.stepName, this.stepMsg, this.stepCount),
      this.stepTrack,
    );
    this.blocks = h("div", { class: "blocks assistant-blocks" });
    this.connNote = h("div", { class: "conn-note", hidden: true }, h("span", { class: "spinner", "aria-hidden": "true" }), h("span", { class: "conn-text" }, "Reconnecting…"));
    this.result = h("div", { class: "result" });
    this.logList = h("ol", { class: "runlog-list" });
    this.logSummary = h("summary", {}, "Run log");
    this.log = h("details", { class: "runlog" }, this.logSummary, this.logList);
    this.el = h(
      "article",
      { class: "turn", "aria-label": "Turn" },
      h("div", { class: "msg-user" }, prompt),
      h("div", { class: "msg-assistant" }, brandAvatar(), h("div", { class: "assistant-body" }, this.stepper, this.blocks, this.connNote, this.result, this.log)),
    );
    this.setStatus(null);
  }

  get done() {
    return Boolean(this.complete || this.error);
  }

  /** The assistant side of this turn, for the next request's `messages`. */
  get assistantContent() {
    if (this.text.trim()) return this.text.trim();
    if (this.complete) return this.complete.message || "Done.";
    if (this.error) return `The previous attempt failed: ${this.error.message}`;
    return "";
  }

  setConnection(state, detail) {
    const show = state === "reconnecting";
    this.connNote.hidden = !show;
    if (show) this.connNote.querySelector(".conn-text").textContent = detail || "Connection lost; reconnecting…";
  }

  apply(event, seq) {
    this.events += 1;
    const data = event.data || {};
    if (data.sandboxId) this.sandboxId = data.sandboxId;
    this.logEvent(event, seq);
    switch (event.type) {
      case "progress":
        this.setStatus(data.status, data.message);
        if (/^WARNING:/.test(data.message || "")) this.warn(data.message);
        break;
      case "message":
        this.appendText(data.content || "", Boolean(data.delta), seq);
        break;
      case "tool":
        this.addTool(data, seq);
        break;
      case "complete":
        this.finishText();
        this.complete = data;
        if (data.runId) this.runId = data.runId;
        this.setStatus("complete", data.message);
        this.showComplete(data, seq);
        break;
      case "error":
        this.finishText();
        this.error = data;
        this.showError(data, seq);
        break;
      default:
        break;
    }
  }

  setStatus(status, message) {
    if (status) this.status = status;
    const failed = Boolean(this.error);
    const index = this.status ? STATUSES.indexOf(this.status) : failed ? 0 : -1;
    const finished = this.status === "complete" && this.complete;
    STATUSES.forEach((s, i) => {
      let state = "todo";
      if (i < index || (i === index && finished)) state = "done";
      else if (i === index) state = failed ? "failed" : "active";
      this.stepTrack.children[i].dataset.state = state;
    });
    if (this.status) this.stepName.textContent = STATUS_LABEL[this.status];
    this.stepCount.textContent = index >= 0 ? `${index + 1}/${STATUSES.length}` : "";
    if (message !== undefined) {
      this.stepMsg.textContent = message;
      this.stepMsg.title = message;
    }
    this.stepper.dataset.status = this.status || "";
    let icon = "spinner";
    if (failed) icon = "cross";
    else if (finished) icon = "check";
    if (this.stepIcon.dataset.kind !== icon) {
      const next = icon === "spinner" ? h("span", { class: "spinner", "aria-hidden": "true" }) : h("span", { class: icon, "aria-hidden": "true" }, icon === "check" ? "✓" : "✕");
      next.dataset.kind = icon;
      this.stepIcon.replaceWith(next);
      this.stepIcon = next;
    }
  }

  appendText(content, delta, seq) {
    if (!content) return;
    this.currentTools = null;
    if (!delta) {
      // A whole message: its own block.
      this.finishText();
      this.text += (this.text ? "\n\n" : "") + content;
      const el = h("div", { class: "text-block", dataset: { seq } });
      el.innerHTML = renderMarkdown(content);
      this.blocks.append(el);
      return;
    }
    if (!this.currentText) {
      const el = h("div", { class: "text-block streaming", dataset: { seq } });
      this.blocks.append(el);
      this.currentText = { el, source: "" };
      if (this.text) this.text += "\n\n";
    }
    this.currentText.source += content;
    this.currentText.el.dataset.lastSeq = seq;
    this.text += content;
    this.queueRender();
  }

  queueRender() {
    if (this.renderQueued) return;
    this.renderQueued = true;
    requestAnimationFrame(() => {
      this.renderQueued = false;
      if (this.currentText) this.currentText.el.innerHTML = renderMarkdown(this.currentText.source);
    });
  }

  finishText() {
    if (!this.currentText) return;
    this.currentText.el.innerHTML = renderMarkdown(this.currentText.source);
    this.currentText.el.classList.remove("streaming");
    this.currentText = null;
  }

  addTool(data, seq) {
    this.finishText();
    if (!this.currentTools) {
      this.currentTools = h("ul", { class: "tool-group", "aria-label": "File changes" });
      this.blocks.append(this.currentTools);
    }
    const action = data.action || "update";
    const isFile = action !== "run";
    const file = isFile
      ? h("button", { type: "button", class: "tool-file", title: `Open ${data.file}`, onclick: () => this.onFileClick(data.file) }, data.file)
      : h("code", { class: "tool-file", title: data.file }, data.file);
    const extra = [];
    if (typeof data.linesAdded === "number") extra.push(h("span", { class: "added", "aria-label": `${data.linesAdded} lines added` }, `+${data.linesAdded}`));
    if (action === "run" && typeof data.exitCode === "number") extra.push(h("span", { class: `exit${data.exitCode ? " bad" : ""}` }, `exit ${data.exitCode}`));
    const row = h(
      "li",
      { class: "tool-row", dataset: { action, seq, file: data.file } },
      h("span", { class: "tool-ico", "aria-hidden": "true" }, ICON[action] || "•"),
      h("span", { class: "tool-verb" }, VERB[action] || action),
      file,
      extra,
    );
    this.currentTools.append(row);
  }

  warn(message) {
    this.blocks.append(h("div", { class: "callout callout-warn", role: "note" }, h("p", { class: "callout-title" }, "⚠ Running without isolation"), h("p", {}, message.replace(/^WARNING:\s*/, ""))));
  }

  showComplete(data, seq) {
    const share = data.previewUrl ? shareUrl(data.previewUrl, data.accessToken) : "";
    const bits = [];
    if (typeof data.version === "number") bits.push(`version ${data.version}`);
    if (typeof data.tokensUsed === "number" && data.tokensUsed > 0) bits.push(`${data.tokensUsed.toLocaleString("en-US")} tokens`);
    if (data.model) bits.push(data.model);
    const card = h(
      "div",
      { class: "callout callout-success complete-card", dataset: { seq } },
      h(
        "div",
        { class: "complete-row" },
        h("p", { class: "callout-title" }, "✓ Your app is live"),
        h(
          "div",
          { class: "actions" },
          h("button", { type: "button", class: "btn btn-sm", onclick: () => this.onOpenPreview(this) }, "Show preview"),
          share ? h("a", { class: "btn btn-sm", href: share, target: "_blank", rel: "noopener", title: data.previewUrl }, "Open ↗") : null,
        ),
      ),
      bits.length ? h("p", { class: "meta" }, bits.join(" · ")) : null,
    );
    this.result.replaceChildren(card);
  }

  showError(data, seq) {
    const help = troubleshoot(data);
    this.setStatus(this.status, data.message);
    const card = h(
      "div",
      { class: "callout callout-error error-card", role: "alert", dataset: { seq, code: data.code || "" } },
      h("p", { class: "callout-title" }, `✕ ${help.title}`),
      h("p", { class: "error-message" }, data.message || "Unknown error"),
      h("p", { class: "meta" }, "What to do next:"),
      h("ol", { class: "next-steps" }, help.steps.map((s) => h("li", {}, s))),
      data.stack ? h("details", {}, h("summary", {}, "Technical details"), h("pre", {}, data.stack)) : null,
      h("div", { class: "actions" }, h("button", { type: "button", class: "btn btn-sm retry-btn", onclick: () => this.onRetry(this) }, "Try again")),
    );
    this.result.replaceChildren(card);
  }

  logEvent(event, seq) {
    const data = event.data || {};
    let text = "";
    if (event.type === "progress") text = `${data.status}: ${data.message}`;
    else if (event.type === "message") text = data.content;
    else if (event.type === "tool") text = `${data.action} ${data.file}${typeof data.linesAdded === "number" ? ` +${data.linesAdded}` : ""}`;
    else if (event.type === "complete") text = data.message;
    else if (event.type === "error") text = data.message;
    const last = this.logList.lastElementChild;
    if (event.type === "message" && data.delta && last && last.dataset.type === "message" && last.dataset.delta === "true") {
      // Coalesce streamed chunks into one line.
      last.dataset.lastSeq = seq;
      last.querySelector(".seq").textContent = `${last.dataset.seq}–${seq}`;
      const txt = last.querySelector(".txt");
      txt.textContent = (txt.textContent + text).slice(0, 300);
    } else {
      this.logList.append(
        h(
          "li",
          { dataset: { seq, type: event.type, delta: String(Boolean(data.delta)) } },
          h("span", { class: "seq" }, String(seq)),
          h("span", { class: "typ" }, event.type === "progress" ? data.status : event.type),
          h("span", { class: "txt", title: text }, String(text).slice(0, 300)),
        ),
      );
    }
    this.logSummary.textContent = `Run log · ${this.events} events`;
  }
}

export function shareUrl(previewUrl, token) {
  if (!token) return previewUrl;
  const url = new URL(previewUrl);
  url.searchParams.set("token", token);
  return url.toString();
}
