// Assistant replies as Markdown: marked renders, DOMPurify sanitises (the model's words are
// hostile input), and fenced code is highlighted with the editor's parsers. Both libraries are
// installed at set-up and served from /static/vendor/.
import { Marked } from "/static/vendor/marked.esm.js";
import DOMPurify from "/static/vendor/purify.es.mjs";
import { fenceLanguage, highlightInto } from "./languages.js";

const marked = new Marked({ gfm: true, breaks: true, async: false });

// Links leave the app in a new tab, without handing it a window reference.
DOMPurify.addHook("afterSanitizeAttributes", (node) => {
  if (node.tagName === "A" && node.hasAttribute("href")) {
    node.setAttribute("target", "_blank");
    node.setAttribute("rel", "noopener noreferrer");
  }
});

const SANITIZE = { FORBID_TAGS: ["style", "form", "input", "button", "textarea", "select"], FORBID_ATTR: ["style"] };

/** Show `source` in `el`: rendered, sanitised, its code blocks highlighted. */
export function showMarkdown(el, source) {
  el.innerHTML = DOMPurify.sanitize(marked.parse(source), SANITIZE);
  highlightBlocks(el);
}

function highlightBlocks(el) {
  for (const code of el.querySelectorAll("pre > code")) {
    const lang = fenceLanguage((code.className.match(/language-([\w+-]+)/) || [])[1]);
    const text = code.textContent;
    code.replaceChildren();
    highlightInto(code, text, lang);
  }
}
