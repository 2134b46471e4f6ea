// A small syntax highlighter: regex tokenizers per language, rendered as escaped spans, one
// element per line (line numbers come from a CSS counter, so copying never includes them).
import { escapeHtml } from "./dom.js";

const EXT = {
  js: "js", mjs: "js", cjs: "js", jsx: "js", ts: "js", tsx: "js",
  css: "css", scss: "css", less: "css",
  html: "html", htm: "html", svg: "html", xml: "html", vue: "html", svelte: "html",
  json: "json", webmanifest: "json", map: "json",
  py: "python", pyi: "python",
  md: "markdown", markdown: "markdown",
  sh: "sh", bash: "sh", zsh: "sh",
  toml: "conf", ini: "conf", cfg: "conf", yaml: "conf", yml: "conf", env: "conf",
};
const BINARY = /\.(png|jpe?g|gif|webp|avif|ico|bmp|woff2?|ttf|otf|eot|mp3|mp4|webm|ogg|wav|zip|gz|tgz|tar|pdf|wasm|so|pyc|sqlite|db)$/i;

export function languageOf(path) {
  const name = path.split("/").pop().toLowerCase();
  if (name === "dockerfile" || name === "makefile") return "sh";
  if (name.startsWith(".env")) return "conf";
  const ext = name.includes(".") ? name.split(".").pop() : "";
  return EXT[ext] || "plain";
}

export const isBinaryPath = (path) => BINARY.test(path);

export const LANGUAGE_BADGE = { html: "<>", css: "#", js: "JS", json: "{}", python: "PY", markdown: "MD", sh: "$", conf: "⚙", plain: "≡" };

// Each rule: [class or null, sticky regex]. The first rule that matches at the position wins.
const JS_KEYWORDS =
  "break|case|catch|class|const|continue|debugger|default|delete|do|else|export|extends|finally|for|from|function|if|import|in|instanceof|let|new|of|return|static|super|switch|this|throw|try|typeof|var|void|while|with|yield|async|await|get|set|as|interface|type|enum|implements|declare|readonly|public|private|protected";
const JS = [
  ["comment", /\/\/[^\n]*|\/\*[\s\S]*?(?:\*\/|$)/y],
  ["string", /`(?:\\[\s\S]|\$\{[^}]*\}|[^\\`])*(?:`|$)|"(?:\\.|[^\\"\n])*(?:"|$)|'(?:\\.|[^\\'\n])*(?:'|$)/y],
  ["number", /(?:0[xX][\da-fA-F_]+|0[bB][01_]+|0[oO][0-7_]+|(?:\d[\d_]*\.?[\d_]*|\.\d[\d_]*)(?:[eE][+-]?\d+)?n?)(?![\w$])/y],
  ["keyword", new RegExp(`(?:${JS_KEYWORDS})(?![\\w$])`, "y")],
  ["literal", /(?:true|false|null|undefined|NaN|Infinity)(?![\w$])/y],
  ["builtin", /(?:document|window|console|Math|JSON|Object|Array|String|Number|Boolean|Promise|Date|Map|Set|localStorage|fetch|globalThis)(?![\w$])/y],
  ["function", /[A-Za-z_$][\w$]*(?=\s*\()/y],
  [null, /[A-Za-z_$][\w$]*/y],
  ["punct", /[{}()[\];,.]/y],
  ["operator", /[=+\-*/%!<>&|^~?:]+/y],
  [null, /\s+/y],
];

const CSS = [
  ["comment", /\/\*[\s\S]*?(?:\*\/|$)/y],
  ["string", /"(?:\\.|[^\\"\n])*(?:"|$)|'(?:\\.|[^\\'\n])*(?:'|$)/y],
  ["atrule", /@[\w-]+/y],
  ["property", /-{0,2}[A-Za-z][\w-]*(?=\s*:[^{};]*[;}])/y],
  ["number", /#[\da-fA-F]{3,8}(?![\w-])|-?(?:\d+\.?\d*|\.\d+)(?:%|[a-zA-Z]+)?/y],
  ["selector", /[.#][A-Za-z_-][\w-]*|::?[A-Za-z-]+(?:\([^)]*\))?/y],
  ["function", /[A-Za-z-]+(?=\()/y],
  ["keyword", /!important/y],
  ["tag", /[A-Za-z][\w-]*(?=[^{};]*\{)/y],
  [null, /[A-Za-z_-][\w-]*/y],
  ["punct", /[{}();,:>+~*[\]=]/y],
  [null, /\s+/y],
];

const PY_KEYWORDS =
  "and|as|assert|async|await|break|class|continue|def|del|elif|else|except|finally|for|from|global|if|import|in|is|lambda|nonlocal|not|or|pass|raise|return|try|while|with|yield|match|case";
const PYTHON = [
  ["comment", /#[^\n]*/y],
  ["string", /[rRbBuUfF]{0,2}(?:"""[\s\S]*?(?:"""|$)|'''[\s\S]*?(?:'''|$)|"(?:\\.|[^\\"\n])*(?:"|$)|'(?:\\.|[^\\'\n])*(?:'|$))/y],
  ["meta", /@[\w.]+/y],
  ["number", /(?:0[xX][\da-fA-F_]+|\d[\d_]*\.?[\d_]*(?:[eE][+-]?\d+)?j?)(?!\w)/y],
  ["keyword", new RegExp(`(?:${PY_KEYWORDS})(?!\\w)`, "y")],
  ["literal", /(?:True|False|None|self|cls)(?!\w)/y],
  ["builtin", /(?:print|len|range|int|str|float|list|dict|set|tuple|open|isinstance|super|enumerate|zip|map|filter|sorted|min|max|sum|any|all)(?=\()/y],
  ["function", /[A-Za-z_]\w*(?=\s*\()/y],
  [null, /[A-Za-z_]\w*/y],
  ["punct", /[{}()[\];,.:]/y],
  ["operator", /[=+\-*/%!<>&|^~@]+/y],
  [null, /\s+/y],
];

const JSON_RULES = [
  ["property", /"(?:\\.|[^\\"\n])*"(?=\s*:)/y],
  ["string", /"(?:\\.|[^\\"\n])*(?:"|$)/y],
  ["number", /-?\d+\.?\d*(?:[eE][+-]?\d+)?/y],
  ["literal", /(?:true|false|null)(?!\w)/y],
  ["punct", /[{}[\],:]/y],
  [null, /\s+/y],
];

const SH = [
  ["comment", /#[^\n]*/y],
  ["string", /"(?:\\.|[^\\"])*(?:"|$)|'[^']*(?:'|$)/y],
  ["variable", /\$\{[^}]*\}|\$[\w@#?*!$-]+/y],
  ["keyword", /(?:if|then|else|elif|fi|for|while|do|done|case|esac|in|function|return|export|local|set|cd|echo|exit)(?![\w-])/y],
  [null, /[\w./-]+/y],
  ["operator", /[|&;<>()=]+/y],
  [null, /\s+/y],
];

const CONF = [
  ["comment", /[#;][^\n]*/y],
  ["atrule", /^\s*\[[^\]\n]*\]/my],
  ["property", /^[ \t-]*[\w.-]+(?=\s*[:=])/my],
  ["string", /"(?:\\.|[^\\"\n])*(?:"|$)|'[^'\n]*(?:'|$)/y],
  ["number", /-?\d+\.?\d*(?![\w])/y],
  ["literal", /(?:true|false|null|yes|no|on|off)(?!\w)/y],
  [null, /\w+/y],
  [null, /\s+/y],
];

const MARKDOWN = [
  ["heading", /^#{1,6} [^\n]*/my],
  ["string", /```[\s\S]*?(?:```|$)|`[^`\n]+`/y],
  ["keyword", /\*\*[^*\n]+\*\*|__[^_\n]+__/y],
  ["function", /\[[^\]\n]*\]\([^)\n]*\)/y],
  ["punct", /^\s*(?:[-*+]|\d+\.) /my],
  ["comment", /^>[^\n]*/my],
  [null, /[^\n`*_[#>-]+|\n/y],
];

const RULES = { js: JS, css: CSS, python: PYTHON, json: JSON_RULES, sh: SH, conf: CONF, markdown: MARKDOWN };

function tokenizeWith(rules, text, out) {
  let pos = 0;
  let plainStart = 0;
  const flushPlain = (end) => {
    if (end > plainStart) out.push([null, text.slice(plainStart, end)]);
  };
  while (pos < text.length) {
    let matched = false;
    for (const [cls, re] of rules) {
      re.lastIndex = pos;
      const m = re.exec(text);
      if (m && m[0].length > 0) {
        flushPlain(pos);
        out.push([cls, m[0]]);
        pos += m[0].length;
        plainStart = pos;
        matched = true;
        break;
      }
    }
    if (!matched) pos += 1;
  }
  flushPlain(pos);
  return out;
}

// HTML: tags, attributes, comments, entities, and <script>/<style> bodies in their own language.
function tokenizeHtml(text, out) {
  const re = /<!--[\s\S]*?(?:-->|$)|<!(?:doctype|DOCTYPE)[^>]*>?|<\/?[A-Za-z][\w:-]*|&[#\w]+;/g;
  let pos = 0;
  while (pos < text.length) {
    re.lastIndex = pos;
    const m = re.exec(text);
    if (!m) {
      out.push([null, text.slice(pos)]);
      break;
    }
    if (m.index > pos) out.push([null, text.slice(pos, m.index)]);
    const tok = m[0];
    pos = m.index + tok.length;
    if (tok.startsWith("<!--")) out.push(["comment", tok]);
    else if (tok.startsWith("<!")) out.push(["meta", tok]);
    else if (tok.startsWith("&")) out.push(["entity", tok]);
    else {
      out.push(["tag", tok]);
      pos = tokenizeTagRest(text, pos, out);
      const name = tok.slice(1).toLowerCase();
      if (name === "script" || name === "style") {
        const close = text.toLowerCase().indexOf(`</${name}`, pos);
        const end = close < 0 ? text.length : close;
        const body = text.slice(pos, end);
        if (body) tokenizeWith(name === "script" ? JS : CSS, body, out);
        pos = end;
      }
    }
  }
  return out;
}

function tokenizeTagRest(text, pos, out) {
  const attr = /\s+|[^\s=>"'/]+|=|"[^"]*(?:"|$)|'[^']*(?:'|$)|\/?>|\//y;
  while (pos < text.length) {
    attr.lastIndex = pos;
    const m = attr.exec(text);
    if (!m) return pos;
    const tok = m[0];
    pos += tok.length;
    if (tok.endsWith(">")) {
      out.push(["tag", tok]);
      return pos;
    }
    if (/^\s+$/.test(tok)) out.push([null, tok]);
    else if (tok === "=" || tok === "/") out.push(["punct", tok]);
    else if (tok[0] === '"' || tok[0] === "'") out.push(["string", tok]);
    else out.push(["attr", tok]);
  }
  return pos;
}

export function tokenize(text, language) {
  if (language === "html") return tokenizeHtml(text, []);
  const rules = RULES[language];
  return rules ? tokenizeWith(rules, text, []) : [[null, text]];
}

/** Highlighted HTML, one string per line. */
export function highlightLines(text, language) {
  const lines = [];
  let current = "";
  for (const [cls, value] of tokenize(text.replace(/\r\n?/g, "\n"), language)) {
    const parts = value.split("\n");
    parts.forEach((part, i) => {
      if (i > 0) {
        lines.push(current);
        current = "";
      }
      if (part) current += cls ? `<span class="tok-${cls}">${escapeHtml(part)}</span>` : escapeHtml(part);
    });
  }
  lines.push(current);
  if (lines.length > 1 && lines[lines.length - 1] === "") lines.pop(); // a final newline ends the last line
  return lines;
}

/** A <pre> with one .ln span per line. */
export function renderCode(text, language) {
  const pre = document.createElement("pre");
  pre.className = `code lang-${language}`;
  const code = document.createElement("code");
  code.innerHTML = highlightLines(text, language)
    .map((line) => `<span class="ln">${line}</span>`)
    .join("");
  pre.append(code);
  return pre;
}

/** Inline highlighted HTML for a code block (used by the markdown renderer). */
export function highlightInline(text, language) {
  return highlightLines(text, language).join("\n");
}
