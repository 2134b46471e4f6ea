// Injected by sandforge's preview proxy into the editor's own preview frame only (never into
// share links or public previews): when the editor turns it on, the user points at an element
// and clicks it; its selector, text and, where the page can tell, the source file and line go to
// the editor (window.parent) by postMessage, to ride along with the next prompt.
// It reaches nothing but this preview's own origin (it re-reads the page's HTML for the line).
(() => {
  if (window.__sandforgeInspector || window.parent === window) return;
  window.__sandforgeInspector = true;
  const MAX_TEXT = 200;
  let on = false;
  let box = null;
  let hovered = null;

  function outline() {
    if (!box) {
      box = document.createElement("div");
      box.setAttribute("data-sandforge-inspector", "");
      Object.assign(box.style, {
        position: "fixed", zIndex: "2147483647", pointerEvents: "none", border: "2px solid #7c3aed",
        background: "rgba(124, 58, 237, 0.12)", borderRadius: "3px", transition: "all 60ms ease-out",
      });
    }
    return box;
  }

  function show(el) {
    hovered = el;
    const r = el.getBoundingClientRect();
    const b = outline();
    Object.assign(b.style, { left: `${r.left}px`, top: `${r.top}px`, width: `${r.width}px`, height: `${r.height}px` });
    if (!b.isConnected) document.documentElement.append(b);
  }

  function cssEscape(value) {
    return window.CSS?.escape ? CSS.escape(value) : value.replace(/[^\w-]/g, "\\$&");
  }

  /** A selector that finds this element: from the nearest id, else from <body>. */
  function selectorOf(el) {
    const parts = [];
    for (let node = el; node && node.nodeType === 1 && node !== document.documentElement; node = node.parentElement) {
      if (node.id) {
        parts.unshift(`#${cssEscape(node.id)}`);
        break;
      }
      let part = node.localName;
      const parent = node.parentElement;
      if (parent) {
        const same = [...parent.children].filter((c) => c.localName === node.localName);
        if (same.length > 1) part += `:nth-of-type(${same.indexOf(node) + 1})`;
      }
      parts.unshift(part);
      if (node.localName === "body") break;
    }
    return parts.join(" > ");
  }

  /** React in development keeps where each element was written: ≤18 as _debugSource, 19 as a stack. */
  function reactSource(el) {
    const key = Object.keys(el).find((k) => k.startsWith("__reactFiber$"));
    for (let fiber = key ? el[key] : null; fiber; fiber = fiber.return) {
      if (fiber._debugSource) return { file: fiber._debugSource.fileName, line: fiber._debugSource.lineNumber };
      const stack = fiber._debugStack?.stack;
      if (typeof stack === "string") {
        for (const frame of stack.split("\n").slice(1)) {
          const m = frame.match(/(https?:\/\/[^\s)]+?):(\d+):\d+\)?\s*$/);
          if (m && !/node_modules|\/@vite\/|\/@react-refresh/.test(m[1])) {
            return { file: new URL(m[1]).pathname.replace(/^\//, ""), line: Number(m[2]) };
          }
        }
      }
    }
    return null;
  }

  /** For a page written as HTML: the line of the element's opening tag in the page's source. */
  async function htmlSource(el) {
    const open = el.outerHTML.slice(0, el.outerHTML.indexOf(">") + 1);
    if (!open) return null;
    const same = [...document.querySelectorAll(el.localName)].filter((o) => o.outerHTML.startsWith(open));
    const nth = same.indexOf(el);
    try {
      const response = await fetch(location.pathname + location.search, { credentials: "same-origin", cache: "no-store" });
      const source = await response.text();
      let at = -1;
      for (let i = 0; i <= nth; i++) {
        at = source.indexOf(open, at + 1);
        if (at < 0) return null; // made by a script, not written in the page
      }
      const path = location.pathname.endsWith("/") ? `${location.pathname}index.html` : location.pathname;
      return { file: path.replace(/^\//, ""), line: source.slice(0, at).split("\n").length };
    } catch {
      return null;
    }
  }

  async function pick(el) {
    const text = (el.innerText || el.textContent || "").replace(/\s+/g, " ").trim().slice(0, MAX_TEXT);
    const source = reactSource(el) || (await htmlSource(el));
    window.parent.postMessage({ type: "sandforge:picked", selector: selectorOf(el), tag: el.localName, text, ...(source || {}) }, "*");
  }

  function onMove(event) {
    const el = event.target;
    if (el instanceof Element && el !== box) show(el);
  }

  function onClick(event) {
    event.preventDefault();
    event.stopPropagation();
    const el = hovered || event.target;
    if (el instanceof Element) pick(el);
  }

  function setOn(value) {
    on = value;
    for (const [type, handler] of [["mousemove", onMove], ["click", onClick]]) {
      if (on) addEventListener(type, handler, true);
      else removeEventListener(type, handler, true);
    }
    document.documentElement.style.cursor = on ? "crosshair" : "";
    if (!on) box?.remove();
  }

  addEventListener("message", (event) => {
    if (event.source !== window.parent || event.data?.type !== "sandforge:inspect") return;
    setOn(Boolean(event.data.on));
  });
  // The editor may have been in selection mode when this page (re)loaded.
  window.parent.postMessage({ type: "sandforge:inspector-ready" }, "*");
})();
