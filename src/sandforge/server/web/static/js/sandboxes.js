// /sandboxes: list every sandbox with its state, age and preview link; stop, start, delete.
import { api, sandboxPath } from "./api.js";
import { $, h, duration, toast } from "./dom.js";

const REFRESH_MS = 5000;
const tbody = $("#sandboxes tbody");
const table = $("#sandboxes");
const empty = $("#empty");
const stats = $("#stats");
const dialog = $("#confirm-dialog");
let fetchedAt = 0;
let sandboxes = [];
let timer = null;
let signature = "";
const busy = new Set();
const shareLinks = new Map(); // sandboxId -> share URL with token, from the runs' complete events
let projectsBySandbox = null; // sandboxId -> project, when the server has the projects API
const readRuns = new Set(); // runs whose events were already searched for a share link

function ageOf(s) {
  return s.ageSeconds + (Date.now() - fetchedAt) / 1000;
}

function withToken(previewUrl, token) {
  if (!token) return previewUrl;
  const url = new URL(previewUrl);
  url.searchParams.set("token", token);
  return url.toString();
}

function projectOf(s) {
  return projectsBySandbox?.get(s.id) || null;
}

/** The link that opens the preview: the project's share link, else the sandbox's. */
function previewOf(s) {
  if (s.shareUrl) return { url: s.shareUrl, label: s.previewUrl };
  const project = projectOf(s);
  if (project?.previewUrl) return { url: withToken(project.previewUrl, project.accessToken), label: project.previewUrl };
  if (s.accessToken) return { url: withToken(s.previewUrl, s.accessToken), label: s.previewUrl };
  return { url: shareLinks.get(s.id) || null, label: s.previewUrl };
}

function confirmDelete(id) {
  return new Promise((resolve) => {
    $("#confirm-text").textContent = `Sandbox ${id} and all its files will be deleted. Its preview link stops working. This cannot be undone.`;
    dialog.returnValue = "";
    dialog.addEventListener("close", () => resolve(dialog.returnValue === "confirm"), { once: true });
    dialog.showModal();
  });
}

async function act(s, action, button) {
  if (action === "delete" && !(await confirmDelete(s.id))) return;
  busy.add(s.id);
  button.disabled = true;
  const label = button.textContent;
  button.replaceChildren(h("span", { class: "spinner", "aria-hidden": "true" }), { stop: "Stopping…", start: "Starting…", delete: "Deleting…" }[action]);
  const row = button.closest("tr");
  try {
    if (action === "delete") {
      await api(sandboxPath(s.id), { method: "DELETE" });
      row?.classList.add("leaving");
      toast(`Deleted ${s.id}`, "ok");
    } else {
      await api(`${sandboxPath(s.id)}/${action}`, { method: "POST" });
      toast(action === "stop" ? `Stopped ${s.id}` : `Started ${s.id}`, "ok");
    }
  } catch (err) {
    toast(err.message, "error", 6000);
    button.textContent = label;
    button.disabled = false;
  } finally {
    busy.delete(s.id);
    await load();
  }
}

function render(force = false) {
  // Re-render only when something changed, so keyboard focus survives the auto-refresh.
  const next = JSON.stringify(sandboxes.map((s) => [s.id, s.state, previewOf(s).url, projectOf(s)?.name, busy.has(s.id)]));
  if (!force && next === signature) return;
  signature = next;
  const running = sandboxes.filter((s) => s.state === "started").length;
  stats.replaceChildren(
    h("div", { class: "stat" }, h("b", {}, String(sandboxes.length)), h("span", {}, sandboxes.length === 1 ? "sandbox" : "sandboxes")),
    h("div", { class: "stat" }, h("b", {}, String(running)), h("span", {}, "running")),
    h("div", { class: "stat" }, h("b", {}, String(sandboxes.length - running)), h("span", {}, "stopped")),
  );
  empty.hidden = sandboxes.length > 0;
  table.hidden = sandboxes.length === 0;
  tbody.replaceChildren(
    ...sandboxes.map((s) => {
      const started = s.state === "started";
      const { url: share, label: previewLabel } = previewOf(s);
      const project = projectOf(s);
      const page = project?.flow === "persistent" ? "/create" : "/create-daytona";
      const actions = h("div", { class: "row-actions" });
      const toggle = h("button", { type: "button", class: "btn btn-sm", "aria-label": `${started ? "Stop" : "Start"} ${s.id}`, disabled: busy.has(s.id) }, started ? "Stop" : "Start");
      toggle.addEventListener("click", () => act(s, started ? "stop" : "start", toggle));
      const del = h("button", { type: "button", class: "btn btn-sm btn-danger", "aria-label": `Delete ${s.id}`, disabled: busy.has(s.id) }, "Delete");
      del.addEventListener("click", () => act(s, "delete", del));
      actions.append(h("a", { class: "btn btn-sm btn-ghost", href: `${page}?project=${encodeURIComponent(project?.id || s.id)}`, "aria-label": `Open the project of ${s.id}` }, "Project"), toggle, del);
      const name = project ? project.name || project.id : null;
      return h(
        "tr",
        { dataset: { id: s.id, state: s.state } },
        h("td", {}, h("div", { class: "sb-id" }, s.id), h("div", { class: "sb-name" }, [name, s.provider].filter(Boolean).join(" · "))),
        h("td", {}, h("span", { class: "badge", dataset: { status: s.state } }, s.state)),
        h("td", { class: "num", dataset: { age: "" } }, duration(ageOf(s))),
        h(
          "td",
          {},
          h("a", { class: "sb-link", href: share || previewLabel, target: "_blank", rel: "noopener", title: share ? "Opens with its access token" : "Private previews need the share link with its token: open the project to get it" }, previewLabel),
        ),
        h("td", {}, actions),
      );
    }),
  );
}

async function loadShareLinks() {
  // The list API has no token; the runs' complete events do. Best effort.
  try {
    const { runs } = await api("/api/runs");
    const missing = new Set(sandboxes.filter((s) => !previewOf(s).url).map((s) => s.id));
    const wanted = runs.filter((r) => missing.has(r.sandboxId) && r.state === "succeeded" && !readRuns.has(r.runId));
    for (const r of wanted) readRuns.add(r.runId);
    await Promise.all(
      wanted.map(async (r) => {
        const response = await fetch(`/api/runs/${encodeURIComponent(r.runId)}/events`);
        if (!response.ok) return;
        const text = await response.text();
        for (const line of text.split(/\r?\n/)) {
          if (!line.startsWith("data:")) continue;
          try {
            const event = JSON.parse(line.slice(5));
            if (event.type === "complete" && event.data.previewUrl && event.data.accessToken) {
              const url = new URL(event.data.previewUrl);
              url.searchParams.set("token", event.data.accessToken);
              shareLinks.set(event.data.sandboxId, url.toString());
            }
          } catch {
            /* not JSON */
          }
        }
      }),
    );
  } catch {
    /* links fall back to the bare preview URL */
  }
}

async function load() {
  clearTimeout(timer);
  try {
    const [body, projects] = await Promise.all([
      api("/api/sandboxes"),
      api("/api/projects").catch(() => null),
    ]);
    fetchedAt = Date.now();
    sandboxes = body.sandboxes.sort((a, b) => b.createdAt - a.createdAt);
    projectsBySandbox = projects ? new Map(projects.projects.filter((p) => p.sandboxId).map((p) => [p.sandboxId, p])) : null;
    if (sandboxes.some((s) => !previewOf(s).url)) await loadShareLinks();
    render();
  } catch (err) {
    signature = "";
    tbody.replaceChildren(h("tr", {}, h("td", { colspan: "5", class: "muted" }, `Could not load sandboxes: ${err.message}`)));
  }
  if (!document.hidden) timer = setTimeout(load, REFRESH_MS);
}

setInterval(() => {
  for (const cell of tbody.querySelectorAll("td[data-age]")) {
    const s = sandboxes.find((x) => x.id === cell.closest("tr").dataset.id);
    if (s) cell.textContent = duration(ageOf(s));
  }
}, 1000);

document.addEventListener("visibilitychange", () => {
  if (!document.hidden) load();
});
$("#refresh-btn").addEventListener("click", () => load());
load();
