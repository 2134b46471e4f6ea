// /create-daytona and /create: prompt → streamed run → live preview, files and follow-ups.
// This module only wires the parts together; each part lives in its own module.
import { $, h, toast } from "./dom.js";
import { ServerConnection } from "./connection.js";
import { Session } from "./session.js";
import { Composer } from "./composer.js";
import { Conversation } from "./conversation.js";
import { PreviewPanel } from "./preview.js";
import { ShipBar } from "./ship.js";
import { SettingsDialog } from "./settings.js";
import { GitHubDialog } from "./github.js";
import { FilesPanel } from "./files.js";
import { Tabs } from "./tabs.js";
import { Timeline } from "./timeline.js";
import { ModelPicker } from "./picker.js";
import { Panes } from "./panes.js";
import { ElementPicker } from "./elementpick.js";
import { loadProjects, renderProjects } from "./projects.js";
import { deleteProject, projectActions, renameProject } from "./manage.js";

const page = document.body.dataset;
const els = {
  main: $("#main"),
  start: $("#start"),
  session: $("#session"),
  recent: $("#recent"),
  recentList: $("#recent-list"),
  title: $("#project-title"),
  runBadge: $("#run-badge"),
  projectsBtn: $("#projects-btn"),
  projectsDialog: $("#projects-dialog"),
  projectsList: $("#projects-dialog-list"),
  newBtn: $("#new-btn"),
  fileCount: $("#file-count"),
  connBanner: $("#conn-banner"),
};

const connection = new ServerConnection();
const panes = new Panes();
const preview = new PreviewPanel({
  connection,
  staticFiles: page.flow === "persistent",
  onShowLogs: () => tabs.select("logs"),
  onSandbox: (sandboxId, running) => session.observeSandbox(sandboxId, running),
});
const ship = new ShipBar();
const projectSettings = new SettingsDialog();
const githubDialog = new GitHubDialog();
const files = new FilesPanel({
  skippedDirs: JSON.parse(page.skippedDirs),
  onCount: (n) => {
    els.fileCount.hidden = n === 0;
    els.fileCount.textContent = String(n);
  },
  onSaved: () => {
    // Our own version: the feed's echo of it is not news.
    timeline.refresh();
    preview.showVersion();
  },
});
const tabs = new Tabs(["preview", "code", "history", "logs"], (name) => {
  if (name === "code") files.openDefault();
  if (name === "history") timeline.refresh();
});
const timeline = new Timeline({
  busy: () => Boolean(session.active),
  onRestored: () => showNewVersion(),
});
const conversation = new Conversation($("#conversation"), {
  onFileClick: (path) => {
    panes.show("app");
    tabs.select("code");
    files.open(path);
  },
  onRetry: (turn) => composer.followUp(turn.prompt),
  onFixIt: (problems) => composer.fixIt(problems),
  onOpenPreview: () => {
    panes.show("app");
    tabs.select("preview", { focus: true });
  },
});
const session = new Session({
  endpoint: page.endpoint,
  connection,
  conversation,
  hooks: {
    onChange: () => render(),
    onEvent: (turn, event, { restoring }) => showEvent(event, restoring),
    onForeignRun: () => toast("This project was updated in another session", "info"),
    onVersion: (version) => {
      // Our own restores and edits come back on the feed too; only others' are news.
      if (timeline.current !== null && version <= timeline.current) return;
      toast(`Version ${version} was saved in another session`, "info");
      timeline.refresh();
      showNewVersion();
    },
  },
});
const picker = new ModelPicker();
new ElementPicker({
  onPicked: (element) => {
    composer.addElement(element);
    panes.show("chat");
  },
});
const composer = new Composer({
  session,
  picker,
  maxPrompt: Number(page.maxPrompt),
  onStarted: () => {
    showSession();
    preview.setGenerating(true, "Sending your prompt…");
  },
});

/** What one event changes outside its turn (the turn itself shows it in the conversation). */
function showEvent(event, restoring) {
  const data = event.data || {};
  if (event.type === "tool" && data.action !== "read") files.touched(data.action === "run" ? "" : data.file);
  if (event.type === "error") files.cancelRefresh();
  if (event.type === "complete" && data.model) showModelRan(data.model);
  if (event.type === "complete" || event.type === "error") ship.refresh();
  if (restoring) return; // the finished state is drawn once, after the replay
  if (event.type === "progress") {
    preview.setGenerating(true, data.message);
    if (data.previewUrl) preview.showLive(data.previewUrl, data.accessToken);
  }
  if (event.type === "complete") {
    // On a phone, a finished run shows the app it made (the chat is one tap away).
    panes.show("app");
    preview.showVersion(data.previewUrl, data.accessToken);
    files.refresh();
    timeline.refresh();
  }
}

/** The top bar's model badge says which model made the project's newest version. */
function showModelRan(model) {
  const pill = $("#model-pill");
  pill.lastChild.textContent = model;
  pill.title = "The model that made this project's newest version";
  pill.classList.toggle("pill-warn", model === "offline");
}

/** A restore or a manual edit changed the files: show them everywhere. */
function showNewVersion() {
  preview.showVersion();
  files.reload();
}

/** Redraw everything that is drawn from the session. */
function render() {
  if (session.projectId || session.turns.length) setTitle(session.title);
  setRunBadge(session.runStatus);
  composer.render();
  if (!session.active) preview.setGenerating(false);
  if (session.project) {
    preview.setProject(session.project);
    picker.setProject(session.project);
  }
  preview.setBuilt(session.built);
  ship.setProject(session.projectId, session.built);
  projectSettings.setProject(session.projectId);
  githubDialog.setProject(session.projectId, session.built);
  files.setSource({ sandboxId: session.liveSandboxId, projectId: session.projectId });
  timeline.setProject(session.projectId);
  for (const button of [$("#rename-btn"), $("#delete-btn")]) button.hidden = !session.projectId;
  updateUrl();
}

function showSession() {
  if (!els.session.hidden) return;
  els.start.hidden = true;
  els.session.hidden = false;
  els.main.dataset.view = "session";
}

function setTitle(title) {
  els.title.textContent = title;
  els.title.title = title;
  document.title = `${title} · sandforge`;
}

function setRunBadge(status) {
  els.runBadge.hidden = !status;
  if (status) {
    els.runBadge.dataset.status = status;
    els.runBadge.textContent = status;
  }
}

/** The address names the project, so a reload or a shared address reopens it. */
function updateUrl() {
  const url = new URL(location.href);
  url.search = "";
  if (session.projectId) url.searchParams.set("project", session.projectId);
  else if (session.lastRunId) url.searchParams.set("run", session.lastRunId);
  if (url.href !== location.href) history.replaceState(null, "", url);
}

async function openSession(id) {
  showSession();
  setTitle("Loading project…");
  try {
    if (!(await session.restore(id))) {
      setTitle("Project not found");
      conversation.notice("Project not found", "There is no project with that id on this server. It may have been deleted.", [
        h("a", { class: "btn btn-sm", href: location.pathname }, "Start a new project"),
      ]);
    }
  } catch (err) {
    setTitle("Project");
    toast(err.message, "error", 6000);
  }
  conversation.scrollDown(true);
}

function showConnection(online) {
  els.connBanner.hidden = online;
  if (online) toast("Connected to the sandforge server again", "ok");
}

async function refreshRecent() {
  try {
    const projects = await loadProjects();
    els.recent.hidden = projects.length === 0;
    renderProjects(els.recentList, projects, { limit: 6, actions: projectActions(refreshRecent) });
  } catch {
    els.recent.hidden = true;
  }
}

async function openProjectsDialog() {
  els.projectsList.replaceChildren(h("li", { class: "empty-note" }, "Loading…"));
  els.projectsDialog.showModal();
  try {
    renderProjects(els.projectsList, await loadProjects(), {
      current: session.projectId,
      actions: projectActions(openProjectsDialog, (deleted) => {
        // The open project is gone: back to a new one.
        if (deleted.id === session.projectId) location.assign(location.pathname);
      }),
    });
  } catch (err) {
    els.projectsList.replaceChildren(h("li", { class: "empty-note" }, err.message));
  }
}

els.newBtn.href = location.pathname;
picker.load().then(() => session.project && picker.setProject(session.project));
els.projectsBtn.addEventListener("click", openProjectsDialog);
$("#rename-btn").addEventListener("click", async () => {
  if (!session.project) return;
  const renamed = await renameProject({ id: session.projectId, name: session.title });
  if (renamed) await session.refresh();
});
$("#delete-btn").addEventListener("click", async () => {
  if (session.projectId && (await deleteProject({ id: session.projectId, name: session.title }))) location.assign(location.pathname);
});
els.projectsDialog.addEventListener("click", (event) => {
  if (event.target === els.projectsDialog || event.target.closest("[data-close]")) els.projectsDialog.close();
});
els.connBanner.querySelector("button").addEventListener("click", () => connection.reconnectNow());
connection.addEventListener("change", (event) => showConnection(event.detail.online));

// A project or run id: the server says which, and returns the whole session.
const params = new URLSearchParams(location.search);
const reopen = params.get("project") || params.get("run");
if (reopen) {
  openSession(reopen);
} else {
  refreshRecent();
  if (params.get("prompt")) composer.prefill(params.get("prompt"));
  // Ready to type on desktop; on touch screens, no keyboard popping up uninvited.
  if (matchMedia("(pointer: fine)").matches) $("#prompt").focus();
}
