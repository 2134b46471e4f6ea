// On a phone the chat and the workspace (preview, code, history) do not fit side by side:
// a toggle shows one at a time. Wider screens show both and never see the toggle.
import { $ } from "./dom.js";

const TOUCH = matchMedia("(pointer: coarse)");

export class Panes {
  constructor() {
    this.session = $("#session");
    this.buttons = { chat: $("#pane-chat"), app: $("#pane-app") };
    for (const [pane, button] of Object.entries(this.buttons)) button.addEventListener("click", () => this.show(pane));
    // Touch screens have no Ctrl+Enter to mention.
    if (TOUCH.matches) {
      for (const textarea of document.querySelectorAll("textarea[placeholder]")) textarea.placeholder = textarea.placeholder.replace(/\s*\((Ctrl|⌘)\+Enter to send\)/, "");
    }
  }

  /** "chat" or "app" (on wide screens both show anyway). */
  show(pane) {
    this.session.dataset.pane = pane;
    for (const [name, button] of Object.entries(this.buttons)) button.setAttribute("aria-pressed", String(name === pane));
  }
}
