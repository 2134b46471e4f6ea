// The prompt forms: the start form (a new project) and the follow-up form, with their checks,
// errors, busy state and the Stop button. Every prompt, typed or sent by a button (Try again,
// Fix it), goes through send(), so each is checked and shown the same way.
import { $, h, submitOnModEnter, localiseKbdHints } from "./dom.js";
import { fixItPrompt } from "./outcome.js";
import { Attachments } from "./attachments.js";

const EMPTY_PROMPT = "Describe what to build first: the prompt is empty.";

/** A refusal in words a user can act on. The server's code stays out of sight (it is on data-code). */
function humanMessage(err) {
  switch (err.code) {
    case "project_not_found":
    case "sandbox_not_found":
      return "This project no longer exists on the server. Start a new project to carry on.";
    case "too_many_messages":
      return `This conversation has grown too long to send in one request (${err.message.replace(/\.$/, "")}). Start a new project to carry on.`;
    case "invalid_request":
    case "invalid_json":
      return `The server could not accept this request: ${err.message}`;
    default:
      if (err.status >= 500) return `The server failed to start the run (error ${err.status}). Try again; its terminal shows what went wrong.`;
      return err.message;
  }
}

export class Composer {
  /**
   * @param {object} opts
   * @param {import("./session.js").Session} opts.session
   * @param {number} opts.maxPrompt  the server's prompt limit, for the counter (the server is the judge)
   * @param {() => void} opts.onStarted  the server accepted a prompt: its turn is on the page
   * @param {import("./picker.js").ModelPicker} opts.picker
   */
  constructor({ session, maxPrompt, onStarted, picker }) {
    this.session = session;
    this.picker = picker;
    this.maxPrompt = maxPrompt;
    this.onStarted = onStarted;
    this.stopping = false;
    this.els = {
      start: {
        form: $("#generate"),
        prompt: $("#prompt"),
        button: $("#generate-btn"),
        error: $("#generate-error"),
        count: $("#prompt-count"),
        idleLabel: "Generate",
        busyLabel: "Generating…",
      },
      followup: {
        form: $("#followup"),
        prompt: $("#followup-prompt"),
        button: $("#followup-btn"),
        error: $("#followup-error"),
        count: $("#followup-count"),
        idleLabel: "Send",
        busyLabel: "Working…",
      },
    };
    this.projectType = $("#projectType");
    this.cancelBtn = $("#cancel-btn");
    this.followupNote = $("#followup-note");

    this.els.start.form.addEventListener("submit", (event) => {
      event.preventDefault();
      this.session.configure({ projectType: this.projectType.value, agents: this.selectedAgents(), model: this.picker.requested, sandbox: $("#sandbox-provider")?.value });
      this.send(this.els.start.prompt.value, "start");
    });
    this.els.followup.form.addEventListener("submit", (event) => {
      event.preventDefault();
      this.send(this.els.followup.prompt.value, "followup");
    });
    this.cancelBtn.addEventListener("click", () => this.stop());
    for (const button of document.querySelectorAll(".example")) {
      button.addEventListener("click", () => this.useExample(button.dataset.prompt));
    }
    for (const [name, form] of Object.entries(this.els)) {
      form.attachments = new Attachments(form.form, $(`#${name}-attachments`), $(`#${name}-attach`), $(`#${name}-attach-btn`));
      submitOnModEnter(form.prompt);
      form.prompt.addEventListener("input", () => this.updateCount(form));
      this.updateCount(form);
    }
    localiseKbdHints();
  }

  selectedAgents() {
    return [...this.els.start.form.querySelectorAll("input[name=agents]:checked")].map((i) => i.value);
  }

  /** A prompt given in the address (?prompt=), ready to edit or send. */
  prefill(prompt) {
    this.els.start.prompt.value = prompt;
    this.updateCount(this.els.start);
  }

  useExample(prompt) {
    const textarea = this.els.start.prompt;
    textarea.value = prompt;
    this.updateCount(this.els.start);
    textarea.focus();
    textarea.setSelectionRange(prompt.length, prompt.length);
  }

  updateCount(form) {
    const n = form.prompt.value.length;
    const show = this.maxPrompt && n > this.maxPrompt * 0.5;
    form.count.textContent = show ? `${n.toLocaleString("en-US")} / ${this.maxPrompt.toLocaleString("en-US")}` : "";
    form.count.classList.toggle("over", Boolean(this.maxPrompt) && n > this.maxPrompt);
  }

  /** An element picked in the preview goes with the next follow-up. */
  addElement(element) {
    this.els.followup.attachments.addElement(element);
    this.els.followup.prompt.focus({ preventScroll: true });
  }

  /** A follow-up from a button in the conversation (Try again, Run it again). */
  followUp(prompt) {
    return this.send(prompt, "followup");
  }

  /** "Fix it": ask for a fix of the problems the last run left in the preview. */
  fixIt(problems) {
    return this.send(fixItPrompt(problems), "followup");
  }

  /** Check `prompt`, then send it as a new project ("start") or a follow-up ("followup"). */
  async send(prompt, source) {
    const form = this.els[source];
    this.clearErrors();
    if (this.session.active) {
      this.showError(form, "A run is in progress: wait for it to finish, or stop it.");
      return;
    }
    if (!prompt.trim()) {
      this.showError(form, EMPTY_PROMPT);
      form.prompt.focus();
      return;
    }
    // A button's prompt (Try again, Fix it) carries nothing but its words.
    const attachments = prompt === form.prompt.value ? form.attachments : null;
    try {
      await this.session.send(prompt, {
        images: attachments?.payload || [],
        imageUrls: attachments?.urls || [],
        elements: attachments?.elementsPayload || [],
        onAccepted: () => {
          // The prompt is in the conversation now; the box is free for the next one.
          if (form.prompt.value === prompt) form.prompt.value = "";
          attachments?.clear();
          this.updateCount(form);
          this.onStarted();
          this.els.followup.prompt.focus({ preventScroll: true });
        },
      });
    } catch (err) {
      if (err.name !== "ApiError") throw err;
      this.showError(form, humanMessage(err), err.code);
      form.prompt.focus();
    }
  }

  async stop() {
    if (!this.session.active || this.stopping) return;
    this.stopping = true;
    this.render();
    try {
      await this.session.cancel();
    } catch (err) {
      this.stopping = false;
      this.render();
      this.showError(this.els.followup, `Could not stop the run: ${humanMessage(err)}`, err.code);
    }
    // Otherwise "Stopping…" stays until the run's stopped turn arrives and the session goes idle.
  }

  showError(form, message, code = "") {
    form.error.dataset.code = code;
    form.error.replaceChildren(h("span", { "aria-hidden": "true" }, "⚠"), h("strong", {}, message));
  }

  clearErrors() {
    for (const form of Object.values(this.els)) form.error.replaceChildren();
  }

  /** Busy while the session has a run in progress (started here, or found running on reopening). */
  render() {
    const busy = Boolean(this.session.active);
    if (!busy) this.stopping = false;
    for (const form of Object.values(this.els)) {
      form.button.disabled = busy;
      form.button.setAttribute("aria-busy", String(busy));
      form.button.querySelector(".btn-label").textContent = busy ? form.busyLabel : form.idleLabel;
    }
    this.followupNote.hidden = !busy;
    this.cancelBtn.hidden = !busy;
    this.cancelBtn.disabled = this.stopping;
    this.cancelBtn.setAttribute("aria-busy", String(this.stopping));
    this.cancelBtn.textContent = this.stopping ? "Stopping…" : "Stop run";
  }
}
