// "Select element" in the preview panel: the editor's own frame carries the proxy's
// inspector (static/frame/inspector.js); this side turns it on and off and takes what the user
// picked. The frame is the generated app, so its messages are the app's word: only those from
// our frame's window and origin are read, and only as bounded text.
import { $ } from "./dom.js";

const MAX = { selector: 500, tag: 40, text: 200, file: 300 };

function bounded(data) {
  const text = (key) => (typeof data[key] === "string" ? data[key].slice(0, MAX[key]) : "");
  const element = { selector: text("selector"), tag: text("tag"), text: text("text") };
  if (!element.selector) return null;
  if (text("file")) element.file = text("file");
  if (Number.isInteger(data.line) && data.line > 0) element.line = data.line;
  return element;
}

export class ElementPicker {
  /** @param {{onPicked: (element: {selector, tag, text, file?, line?}) => void}} opts */
  constructor({ onPicked }) {
    this.onPicked = onPicked;
    this.frame = $("#preview-frame");
    this.button = $("#pick-element");
    this.on = false;
    this.button.addEventListener("click", () => this.set(!this.on));
    addEventListener("message", (event) => this.receive(event));
    addEventListener("keydown", (event) => {
      if (event.key === "Escape" && this.on) this.set(false);
    });
  }

  get origin() {
    try {
      return new URL(this.frame.src).origin;
    } catch {
      return null;
    }
  }

  set(on) {
    this.on = on;
    this.button.setAttribute("aria-pressed", String(on));
    this.frame.closest(".frame-shell")?.classList.toggle("picking", on);
    const origin = this.origin;
    if (origin && this.frame.contentWindow) this.frame.contentWindow.postMessage({ type: "sandforge:inspect", on }, origin);
  }

  receive(event) {
    if (event.source !== this.frame.contentWindow || event.origin !== this.origin) return;
    const type = event.data?.type;
    // A page that (re)loaded while selecting starts selecting again.
    if (type === "sandforge:inspector-ready" && this.on) this.set(true);
    if (type !== "sandforge:picked") return;
    const element = bounded(event.data);
    if (!element) return;
    this.set(false);
    this.onPicked(element);
  }
}
