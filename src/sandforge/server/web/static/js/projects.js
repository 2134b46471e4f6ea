// Past work: the projects (GET /api/projects), with their runs and the state of their sandboxes.
import { api } from "./api.js";
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

/** Projects, newest first: {id, flow, title, runs, last, status, updatedAt, sandboxId}. */
export async function loadProjects() {
  const [runsBody, sandboxesBody, projectsBody] = await Promise.all([
    api("/api/runs"),
    // A provider that cannot list (Daytona unreachable) must not hide the projects.
    api("/api/sandboxes").catch(() => ({ sandboxes: [] })),
    api("/api/projects"),
  ]);
  const sandboxes = new Map(sandboxesBody.sandboxes.map((s) => [s.id, s]));
  const runsByProject = new Map();
  for (const run of runsBody.runs) runsByProject.set(run.projectId, [...(runsByProject.get(run.projectId) || []), run]);
  const projects = projectsBody.projects.map((p) => {
    const runs = (runsByProject.get(p.id) || []).sort((a, b) => a.createdAt - b.createdAt);
    const last = runs.at(-1) || null;
    const project = {
      id: p.id,
      flow: p.flow,
      title: titleFrom(runs[0]?.prompt, p.name),
      firstPrompt: runs[0]?.prompt || "",
      createdAt: p.createdAt,
      runs,
      last,
      sandboxId: p.sandboxId,
      sandbox: p.sandboxId ? sandboxes.get(p.sandboxId) || null : null,
      updatedAt: Math.max(p.updatedAt || 0, last?.createdAt || 0),
    };
    project.status = projectStatus(project);
    return project;
  });
  projects.sort((a, b) => b.updatedAt - a.updatedAt);
  return projects;
}

function projectStatus(p) {
  if (p.last?.state === "running") return "running";
  if (p.flow === "sandbox" && p.sandbox && p.sandbox.state !== "started") return p.sandbox.state;
  if (p.last?.state === "cancelled") return "stopped";
  return p.last?.state || "empty";
}

export function projectHref(p) {
  const page = p.flow === "persistent" ? "/create" : "/create-daytona";
  return `${page}?project=${encodeURIComponent(p.id)}`;
}

const dateFormat = new Intl.DateTimeFormat(undefined, { month: "short", day: "numeric", hour: "2-digit", minute: "2-digit" });

/**
 * @param {object} [opts]
 * @param {(project) => Node[]} [opts.actions]  buttons beside each project (rename, delete)
 */
export function renderProjects(list, projects, { current = null, limit = Infinity, actions = null } = {}) {
  if (!projects.length) {
    list.replaceChildren(h("li", { class: "empty-note" }, "No projects yet. Describe an app to start one."));
    return;
  }
  const now = Date.now() / 1000;
  list.replaceChildren(
    ...projects.slice(0, limit).map((p) => {
      const turns = p.runs.length === 1 ? "1 turn" : `${p.runs.length} turns`;
      // Two projects may share a name: the kind, the creation time and the id tell them apart.
      const created = p.createdAt ? `made ${dateFormat.format(new Date(p.createdAt * 1000))}` : null;
      const meta = [turns, ago(now - p.updatedAt), p.flow === "persistent" ? "static site" : "sandboxed app", created, `#${p.id.slice(-4)}`].filter(Boolean).join(" · ");
      return h(
        "li",
        { class: actions ? "with-actions" : null },
        h(
          "a",
          { class: "project-item", href: projectHref(p), title: p.firstPrompt || p.title, "aria-current": current && current === p.id ? "true" : null, dataset: { project: p.id, sandbox: p.sandboxId || "" } },
          h("span", { class: "p-ico", "aria-hidden": "true" }, p.title.charAt(0).toUpperCase()),
          h("span", { class: "p-main" }, h("span", { class: "p-title" }, p.title), h("span", { class: "p-meta" }, meta)),
          h("span", { class: "badge", dataset: { status: p.status } }, p.status),
        ),
        actions ? h("div", { class: "p-actions" }, actions(p)) : null,
      );
    }),
  );
}
