// The conversation column: turns in order, kept scrolled to the newest while the user is there.
import { h } from "./dom.js";
import { TurnView } from "./turn.js";

const STICKY_DISTANCE_PX = 120;

export class Conversation {
  /**
   * @param {HTMLElement} el
   * @param {object} hooks  what a turn's buttons do: onFileClick, onRetry, onFixIt, onOpenPreview
   */
  constructor(el, hooks) {
    this.el = el;
    this.hooks = hooks;
  }

  /** A turn for `prompt`, not shown yet (a prompt the server refuses never appears). */
  create(prompt, { onReconnect }) {
    return new TurnView({ prompt, onReconnect, ...this.hooks });
  }

  attach(turn) {
    this.el.append(turn.el);
    this.scrollDown(true);
  }

  /** A note in place of turns, e.g. when the project does not exist. */
  notice(title, text, actions) {
    this.el.append(h("div", { class: "callout callout-warn", role: "note" }, h("p", { class: "callout-title" }, title), h("p", {}, text), h("div", { class: "actions" }, actions)));
  }

  /** Run `change`, then follow it down if the user was reading the newest part. */
  keepingBottom(change) {
    const stick = this.nearBottom();
    change();
    if (stick) this.scrollDown(true);
  }

  nearBottom() {
    const c = this.el;
    // On narrow screens the conversation does not scroll by itself; the page does.
    if (c.scrollHeight <= c.clientHeight + 4) return false;
    return c.scrollHeight - c.scrollTop - c.clientHeight < STICKY_DISTANCE_PX;
  }

  scrollDown(force = false) {
    if (force || this.nearBottom()) this.el.scrollTop = this.el.scrollHeight;
  }
}
