// Theme toggle: system → light → dark, remembered in localStorage.
const KEY = "sandforge.theme";
const ORDER = ["system", "light", "dark"];
const root = document.documentElement;
const systemDark = matchMedia("(prefers-color-scheme: dark)");

// The stylesheet keys its palette on data-scheme: the choice, or the system's when unset.
function resolve() {
  const t = current();
  root.dataset.scheme = t === "system" ? (systemDark.matches ? "dark" : "light") : t;
}
systemDark.addEventListener("change", resolve);

function current() {
  const t = root.dataset.theme;
  return t === "light" || t === "dark" ? t : "system";
}

function apply(theme) {
  if (theme === "system") delete root.dataset.theme;
  else root.dataset.theme = theme;
  try {
    if (theme === "system") localStorage.removeItem(KEY);
    else localStorage.setItem(KEY, theme);
  } catch {
    /* private mode: the choice lasts for this page only */
  }
  resolve();
  label();
}

function label() {
  const button = document.getElementById("theme-toggle");
  if (!button) return;
  const t = current();
  const next = ORDER[(ORDER.indexOf(t) + 1) % ORDER.length];
  button.setAttribute("aria-label", `Theme: ${t}. Switch to ${next}`);
  button.title = `Theme: ${t}`;
}

function init() {
  const button = document.getElementById("theme-toggle");
  if (!button) return;
  label();
  button.addEventListener("click", () => apply(ORDER[(ORDER.indexOf(current()) + 1) % ORDER.length]));
}

if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", init);
else init();
