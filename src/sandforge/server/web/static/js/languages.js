// Which language a file is in, for its icon and for the editor's language mode (CodeMirror 6,
// served from /static/vendor/ and installed at set-up), and static highlighting with the same
// parsers for code shown outside the editor (the chat's code blocks).
import { javascript, html, css, json, markdown, python, highlightCode, classHighlighter } from "/static/vendor/codemirror.js";

const EXT = {
  js: "js", mjs: "js", cjs: "js", jsx: "jsx", ts: "ts", mts: "ts", cts: "ts", tsx: "tsx",
  css: "css", scss: "css", less: "css",
  html: "html", htm: "html", svg: "html", xml: "html", vue: "html", svelte: "html",
  json: "json", webmanifest: "json", map: "json",
  py: "python", pyi: "python",
  md: "markdown", markdown: "markdown",
  sh: "sh", bash: "sh", zsh: "sh",
  toml: "conf", ini: "conf", cfg: "conf", yaml: "conf", yml: "conf", env: "conf",
};
const BINARY = /\.(png|jpe?g|gif|webp|avif|ico|bmp|woff2?|ttf|otf|eot|mp3|mp4|webm|ogg|wav|zip|gz|tgz|tar|pdf|wasm|so|pyc|sqlite|db)$/i;

/** The language a fenced code block names (```ts), in the names languageOf returns. */
const FENCE = { javascript: "js", js: "js", jsx: "jsx", ts: "ts", typescript: "ts", tsx: "tsx", html: "html", xml: "html", css: "css", json: "json", python: "python", py: "python", md: "markdown", markdown: "markdown", bash: "sh", sh: "sh", shell: "sh" };

export function languageOf(path) {
  const name = path.split("/").pop().toLowerCase();
  if (name === "dockerfile" || name === "makefile") return "sh";
  if (name.startsWith(".env")) return "conf";
  const ext = name.includes(".") ? name.split(".").pop() : "";
  return EXT[ext] || "plain";
}

export const fenceLanguage = (name) => FENCE[(name || "").toLowerCase()] || "plain";

export const isBinaryPath = (path) => BINARY.test(path);

export const LANGUAGE_BADGE = { html: "<>", css: "#", js: "JS", jsx: "JSX", ts: "TS", tsx: "TSX", json: "{}", python: "PY", markdown: "MD", sh: "$", conf: "⚙", plain: "≡" };

export const LANGUAGE_NAME = { js: "JavaScript", jsx: "JavaScript (JSX)", ts: "TypeScript", tsx: "TypeScript (TSX)", css: "CSS", html: "HTML", json: "JSON", python: "Python", markdown: "Markdown", sh: "shell", conf: "config", plain: "text" };

/** The editor's language support for `lang`, or null (plain text). */
export function languageSupport(lang) {
  switch (lang) {
    case "js": return javascript();
    case "jsx": return javascript({ jsx: true });
    case "ts": return javascript({ typescript: true });
    case "tsx": return javascript({ jsx: true, typescript: true });
    case "html": return html();
    case "css": return css();
    case "json": return json();
    case "markdown": return markdown();
    case "python": return python();
    default: return null;
  }
}

/** `code` highlighted as `lang` into `target` (text nodes and spans with tok-* classes). */
export function highlightInto(target, code, lang) {
  const support = languageSupport(lang);
  if (!support) {
    target.textContent = code;
    return;
  }
  const tree = support.language.parser.parse(code);
  highlightCode(
    code,
    tree,
    classHighlighter,
    (text, classes) => {
      if (!classes) target.append(text);
      else {
        const span = document.createElement("span");
        span.className = classes;
        span.textContent = text;
        target.append(span);
      }
    },
    () => target.append("\n"),
  );
}
