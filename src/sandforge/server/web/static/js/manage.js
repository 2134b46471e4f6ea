// Renaming and deleting projects (PATCH and DELETE /api/projects/{id}), from the project view
// and from the project lists.
import { api, projectPath } from "./api.js";
import { h, toast } from "./dom.js";

/** Ask for a new name and save it; the renamed project, or null when nothing changed. */
export async function renameProject(project) {
  const name = prompt(`Rename "${project.title || project.name}" to:`, project.title || project.name || "");
  if (name === null || !name.trim() || name.trim() === (project.title || project.name)) return null;
  try {
    const renamed = await api(projectPath(project.id), { method: "PATCH", body: { name: name.trim() } });
    toast(`Renamed to ${renamed.name}`, "ok");
    return renamed;
  } catch (err) {
    toast(`Could not rename: ${err.message}`, "error", 6000);
    return null;
  }
}

/** Delete after asking; true when it is gone. */
export async function deleteProject(project) {
  const name = project.title || project.name;
  if (!confirm(`Delete "${name}"? Its files, versions, conversation and sandbox are deleted for good.`)) return false;
  try {
    await api(projectPath(project.id), { method: "DELETE" });
    toast(`Deleted ${name}`, "ok");
    return true;
  } catch (err) {
    toast(`Could not delete ${name}: ${err.message}`, "error", 6000);
    return false;
  }
}

/** Rename and Delete buttons for a project list; `onChange` redraws the list afterwards. */
export function projectActions(onChange, onDeleted = () => {}) {
  return (project) => [
    h("button", { type: "button", class: "btn btn-sm btn-ghost", "aria-label": `Rename ${project.title}`, onclick: async () => (await renameProject(project)) && onChange() }, "Rename"),
    h("button", {
      type: "button",
      class: "btn btn-sm btn-ghost btn-danger-text",
      "aria-label": `Delete ${project.title}`,
      onclick: async () => {
        if (!(await deleteProject(project))) return;
        onDeleted(project);
        onChange();
      },
    }, "Delete"),
  ];
}
