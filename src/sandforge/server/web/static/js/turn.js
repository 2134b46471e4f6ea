// One turn of the conversation: the user's prompt and everything the run streamed back.
import { h, brandAvatar } from "./dom.js";
import { showMarkdown } from "./markdown.js";
import { elementChip } from "./attachments.js";
import { shareUrl } from "./api.js";
import { usd } from "./ship.js";
import { outcomeOf, problemsOf, troubleshoot, APP_ERRORS_HINT } from "./outcome.js";

const STATUSES = ["creating", "initializing", "generating", "writing", "starting", "preview", "complete"];
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
const STEPPER_ICON = { succeeded: "✓", problems: "!", failed: "✕", stopped: "■" };

export class TurnView {
  /**
   * @param {object} opts
   * @param {string} opts.prompt
   * @param {(path: string) => void} opts.onFileClick
   * @param {(turn: TurnView) => void} opts.onRetry       send this turn's prompt again
   * @param {(problems: string[]) => void} opts.onFixIt   ask for a fix of what the run left
   * @param {() => void} opts.onOpenPreview
   * @param {() => void} opts.onReconnect                 try the lost connection again now
   */
  constructor({ prompt, onFileClick, onRetry, onFixIt, onOpenPreview, onReconnect }) {
    this.prompt = prompt;
    this.onFileClick = onFileClick;
    this.onRetry = onRetry;
    this.onFixIt = onFixIt;
    this.onOpenPreview = onOpenPreview;
    this.text = ""; // all assistant text of this turn
    this.status = null;
    this.furthest = -1; // the furthest step reached: a step back to "generating" is a repair pass
    this.complete = null;
    this.error = null;
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
    this.connText = h("span", { class: "conn-text" });
    this.connNote = h(
      "div",
      { class: "conn-note", role: "status", hidden: true },
      h("span", { class: "spinner", "aria-hidden": "true" }),
      this.connText,
      h("button", { type: "button", class: "btn btn-sm", onclick: () => onReconnect() }, "Reconnect now"),
    );
    this.result = h("div", { class: "result" });
    this.logList = h("ol", { class: "runlog-list" });
    this.logSummary = h("summary", {}, "Run log");
    this.log = h("details", { class: "runlog" }, this.logSummary, this.logList);
    this.images = h("div", { class: "msg-images", hidden: true });
    this.elements = h("ul", { class: "attach-list msg-elements", "aria-label": "Elements pointed at", hidden: true });
    this.el = h(
      "article",
      { class: "turn", "aria-label": "Turn" },
      this.images,
      this.elements,
      h("div", { class: "msg-user" }, prompt),
      h("div", { class: "msg-assistant" }, brandAvatar(), h("div", { class: "assistant-body" }, this.stepper, this.blocks, this.connNote, this.result, this.log)),
    );
    this.setStatus(null);
  }

  get done() {
    return Boolean(this.complete || this.error);
  }

  /** "running" until the run ends; then succeeded, problems, stopped or failed. */
  get outcome() {
    return outcomeOf(this) || "running";
  }

  /** The assistant side of this turn, for the next request's `messages`. */
  get assistantContent() {
    if (this.text.trim()) return this.text.trim();
    if (this.complete) return this.complete.message || "Done.";
    if (this.outcome === "stopped") return "The previous attempt was stopped before it finished.";
    if (this.error) return `The previous attempt failed: ${this.error.message}`;
    return "";
  }

  /** The stream's connection: a note while it is down (the run itself goes on without us). */
  setConnection(state, detail) {
    const down = (state === "reconnecting" || state === "offline") && !this.done;
    this.connNote.hidden = !down;
    this.connNote.dataset.state = down ? state : "";
    if (down) this.connText.textContent = detail;
  }

  /** The user asked to stop the run; the stopped card comes when the run has actually stopped. */
  setStopping() {
    if (!this.done) this.setStatus(this.status, "Stopping the run…");
  }

  apply(event, seq) {
    this.events += 1;
    const data = event.data || {};
    this.logEvent(event, seq);
    switch (event.type) {
      case "progress":
        if (data.status === "generating" && this.furthest > STATUSES.indexOf("generating")) this.addRepairNote(data.message, seq);
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
        this.setConnection("done");
        // The server's message says the app is live; with problems left, that is not the whole story.
        this.setStatus("complete", this.outcome === "problems" ? "Finished, with problems left in the preview" : data.message);
        this.showComplete(data, seq);
        break;
      case "error":
        this.finishText();
        this.error = data;
        this.setConnection("done");
        if (this.outcome === "stopped") this.showStopped(data, seq);
        else this.showError(data, seq);
        break;
      default:
        break;
    }
  }

  setStatus(status, message) {
    if (status) this.status = status;
    const outcome = outcomeOf(this);
    const index = this.status ? STATUSES.indexOf(this.status) : outcome ? 0 : -1;
    this.furthest = Math.max(this.furthest, index);
    STATUSES.forEach((s, i) => {
      let state = "todo";
      if (i < index || (i === index && this.complete)) state = "done";
      else if (i === index) state = { failed: "failed", stopped: "stopped" }[outcome] || "active";
      this.stepTrack.children[i].dataset.state = state;
    });
    this.stepName.textContent = outcome === "stopped" ? "Stopped" : this.status ? STATUS_LABEL[this.status] : "Starting";
    this.stepCount.textContent = index >= 0 ? `${index + 1}/${STATUSES.length}` : "";
    if (message !== undefined) {
      this.stepMsg.textContent = message;
      this.stepMsg.title = message;
    }
    this.stepper.dataset.status = this.status || "";
    this.stepper.dataset.outcome = outcome || "";
    const icon = outcome || "spinner";
    if (this.stepIcon.dataset.kind !== icon) {
      const next = icon === "spinner" ? h("span", { class: "spinner", "aria-hidden": "true" }) : h("span", { class: `step-icon ${icon}`, "aria-hidden": "true" }, STEPPER_ICON[icon]);
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
      showMarkdown(el, content);
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
      if (this.currentText) showMarkdown(this.currentText.el, this.currentText.source);
    });
  }

  finishText() {
    if (!this.currentText) return;
    showMarkdown(this.currentText.el, this.currentText.source);
    this.currentText.el.classList.remove("streaming");
    this.currentText = null;
  }

  /** The images the prompt came with. */
  showImages(urls) {
    this.images.hidden = urls.length === 0;
    this.images.replaceChildren(...urls.map((src, i) => h("a", { href: src, target: "_blank", rel: "noopener" }, h("img", { src, alt: `Image ${i + 1} sent with the prompt` }))));
  }

  /** The elements of the preview the prompt points at. */
  showElements(elements) {
    this.elements.hidden = elements.length === 0;
    this.elements.replaceChildren(...elements.map((element) => elementChip(element, null)));
  }

  /** A repair pass started (the run went back to generating after its rendered check). */
  addRepairNote(message, seq) {
    this.finishText();
    this.currentTools = null;
    this.blocks.append(h("p", { class: "repair-note", dataset: { seq } }, h("span", { class: "repair-ico", "aria-hidden": "true" }, "↻"), message));
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

  previewActions(data) {
    const share = shareUrl(data.previewUrl, data.accessToken);
    return [
      h("button", { type: "button", class: "btn btn-sm", onclick: () => this.onOpenPreview() }, "Show preview"),
      share ? h("a", { class: "btn btn-sm", href: share, target: "_blank", rel: "noopener", title: data.previewUrl }, "Open ↗") : null,
    ];
  }

  completeMeta(data) {
    const bits = [];
    if (typeof data.version === "number") bits.push(`version ${data.version}`);
    if (typeof data.tokensUsed === "number" && data.tokensUsed > 0) bits.push(`${data.tokensUsed.toLocaleString("en-US")} tokens`);
    if (typeof data.costUsd === "number") bits.push(usd(data.costUsd));
    if (data.model) bits.push(data.model);
    return bits.length ? h("p", { class: "meta" }, bits.join(" · ")) : null;
  }

  showComplete(data, seq) {
    const problems = problemsOf(data);
    if (problems.length) {
      this.showProblems(data, problems, seq);
      return;
    }
    // The check could not run at all: the app may be fine, but nobody looked.
    const unchecked = data.render?.error ? h("p", { class: "meta" }, `The rendered check could not run: ${data.render.error}`) : null;
    const card = h(
      "div",
      { class: "callout callout-success complete-card", dataset: { seq, outcome: "succeeded" } },
      h("div", { class: "complete-row" }, h("p", { class: "callout-title" }, "✓ Your app is live"), h("div", { class: "actions" }, this.previewActions(data))),
      unchecked,
      this.completeMeta(data),
    );
    this.result.replaceChildren(card);
  }

  /** The run finished and the preview is up, but it still has problems: say so, offer a fix. */
  showProblems(data, problems, seq) {
    const repairs = data.repairs;
    const left = problems.length === 1 ? "1 problem is left" : `${problems.length} problems are left`;
    let title = `The app runs, but the preview shows problems: ${left}`;
    let detail = "The rendered check of the preview found these. The preview stays live.";
    if (repairs) {
      const attempts = repairs.attempts === 1 ? "1 attempt" : `${repairs.attempts} attempts`;
      title = `Automatic repair stopped after ${attempts}: ${left}`;
      const fixed = repairs.fixed ? ` It fixed ${repairs.fixed === 1 ? "1 problem" : `${repairs.fixed} problems`}.` : "";
      detail = `The preview stays live.${fixed} Still there:`;
    }
    const card = h(
      "div",
      { class: "callout callout-warn problems-card", dataset: { seq, outcome: "problems" } },
      h("p", { class: "callout-title" }, `⚠ ${title}`),
      h("p", {}, detail),
      h("ul", { class: "problem-list" }, problems.map((p) => h("li", {}, p))),
      h("p", { class: "meta" }, APP_ERRORS_HINT),
      h(
        "div",
        { class: "actions" },
        h("button", { type: "button", class: "btn btn-sm btn-primary fix-it-btn", onclick: () => this.onFixIt(problems) }, "Fix it"),
        this.previewActions(data),
      ),
      this.completeMeta(data),
    );
    this.result.replaceChildren(card);
  }

  /** Stopped on request: not an error, nothing to troubleshoot. */
  showStopped(data, seq) {
    this.setStatus(this.status, "You stopped this run.");
    const card = h(
      "div",
      { class: "callout callout-neutral stopped-card", dataset: { seq, outcome: "stopped" } },
      h("p", { class: "callout-title" }, "■ Stopped"),
      h("p", {}, "You stopped this run before it finished. Send a new prompt to carry on, or run this one again."),
      h("div", { class: "actions" }, h("button", { type: "button", class: "btn btn-sm retry-btn", onclick: () => this.onRetry(this) }, "Run it again")),
    );
    this.result.replaceChildren(card);
  }

  showError(data, seq) {
    const help = troubleshoot(data);
    this.setStatus(this.status, data.message);
    const card = h(
      "div",
      { class: "callout callout-error error-card", role: "alert", dataset: { seq, code: data.code || "", outcome: "failed" } },
      h("p", { class: "callout-title" }, `✕ ${help.title}`),
      h("p", { class: "error-message" }, data.message || "Unknown error"),
      h("p", { class: "meta" }, "What to do next:"),
      h("ol", { class: "next-steps" }, help.steps.map((s) => h("li", {}, s))),
      data.usage ? this.completeMeta(data.usage) : null,
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
