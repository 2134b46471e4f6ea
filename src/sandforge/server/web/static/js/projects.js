// Past work. With the projects API: GET /api/projects (+ runs per project); without it,
// runs grouped by sandbox (GET /api/runs + GET /api/sandboxes).
import { api, listProjects } from "./api.js";
import { h, ago } from "./dom.js";

export function titleFrom(prompt, name) {
  if (name) return name;
  const first = (prompt || "").trim().split("\n")[0] || "Untitled project";
  const cleaned = first
    .replace(/^\s*(please\s+)?(create|build|make|generate|write|design|develop|code)\s+(me\s+)?((a|an|the|my|some)\s+)?/i, "")
    .replace(/[.:;!?,].*$/, "")
    .replace(/\s+(with|that|which|using|for|where|in|to|so)\b.*$/i, "")
    .trim();
  const text = cleaned || first;
  const title = text.charAt(0).toUpperCase() + text.slice(1);
  return title.length > 60 ? `${title.slice(0, 57)}…` : title;
}

function groupRuns(runs, keyOf) {
  const groups = new Map();
  for (const run of runs) {
    const key = keyOf(run);
    if (!groups.has(key)) groups.set(key, []);
    groups.get(key).push(run);
  }
  for (const list of groups.values()) list.sort((a, b) => a.createdAt - b.createdAt);
  return groups;
}

/** Projects, newest first: {id, flow, title, runs, last, status, updatedAt, sandboxId}. */
export async function loadProjects() {
  const [runsBody, sandboxesBody, projectsBody] = await Promise.all([
    api("/api/runs"),
    api("/api/sandboxes").catch(() => ({ sandboxes: [] })),
    listProjects().then((projects) => (projects ? { projects } : null)),
  ]);
  const sandboxes = new Map(sandboxesBody.sandboxes.map((s) => [s.id, s]));
  let projects;
  if (projectsBody) {
    const byProject = groupRuns(runsBody.runs, (r) => r.projectId || `run:${r.runId}`);
    projects = projectsBody.projects.map((p) => {
      const runs = byProject.get(p.id) || [];
      const last = runs[runs.length - 1] || null;
      return {
        id: p.id,
        flow: p.flow || "sandbox",
        title: titleFrom(runs[0]?.prompt, p.name),
        runs,
        last,
        sandboxId: p.sandboxId || null,
        sandbox: p.sandboxId ? sandboxes.get(p.sandboxId) || null : null,
        previewUrl: p.previewUrl,
        accessToken: p.accessToken,
        updatedAt: Math.max(p.updatedAt || 0, last?.createdAt || 0),
      };
    });
  } else {
    const bySandbox = groupRuns(runsBody.runs, (r) => r.sandboxId || `run:${r.runId}`);
    projects = [...bySandbox.entries()].map(([key, runs]) => {
      const last = runs[runs.length - 1];
      const sandbox = last.sandboxId ? sandboxes.get(last.sandboxId) || null : null;
      return {
        id: last.sandboxId || null,
        runId: last.runId,
        key,
        flow: "sandbox",
        title: titleFrom(runs[0].prompt, sandbox?.labels?.project),
        runs,
        last,
        sandboxId: last.sandboxId,
        sandbox,
        updatedAt: last.createdAt,
      };
    });
  }
  for (const p of projects) p.status = projectStatus(p);
  projects.sort((a, b) => b.updatedAt - a.updatedAt);
  return projects;
}

function projectStatus(p) {
  if (p.last?.state === "running") return "running";
  if (p.flow === "sandbox" && p.sandbox && p.sandbox.state !== "started") return p.sandbox.state;
  if (p.flow === "sandbox" && p.sandboxId && !p.sandbox && !p.previewUrl) return "deleted";
  return p.last?.state || "empty";
}

export function projectHref(p) {
  const page = p.flow === "persistent" ? "/create" : "/create-daytona";
  return p.id ? `${page}?project=${encodeURIComponent(p.id)}` : `${page}?run=${encodeURIComponent(p.runId)}`;
}

export function renderProjects(list, projects, { current = null, limit = Infinity } = {}) {
  if (!projects.length) {
    list.replaceChildren(h("li", { class: "empty-note" }, "No projects yet. Describe an app to start one."));
    return;
  }
  const now = Date.now() / 1000;
  list.replaceChildren(
    ...projects.slice(0, limit).map((p) => {
      const turns = p.runs.length === 1 ? "1 turn" : `${p.runs.length} turns`;
      const meta = [turns, ago(now - p.updatedAt), p.flow === "persistent" ? "persistent" : "sandbox"].join(" · ");
      return h(
        "li",
        {},
        h(
          "a",
          { class: "project-item", href: projectHref(p), "aria-current": current && current === p.id ? "true" : null, dataset: { project: p.id || "", sandbox: p.sandboxId || "" } },
          h("span", { class: "p-ico", "aria-hidden": "true" }, p.title.charAt(0).toUpperCase()),
          h("span", { class: "p-main" }, h("span", { class: "p-title" }, p.title), h("span", { class: "p-meta" }, meta)),
          h("span", { class: "badge", dataset: { status: p.status } }, p.status),
        ),
      );
    }),
  );
}
