// /create-daytona and /create: prompt → streamed run → live preview, files and follow-ups.
import { api, ApiError, findSandbox, listProjects } from "./api.js";
import { $, h, toast, submitOnModEnter, localiseKbdHints } from "./dom.js";
import { RunStream } from "./runstream.js";
import { TurnView } from "./turn.js";
import { PreviewPanel } from "./preview.js";
import { FilesPanel } from "./files.js";
import { loadProjects, renderProjects, titleFrom } from "./projects.js";
import { ProjectFeed } from "./feed.js";

const body = document.body;
const endpoint = body.dataset.endpoint;
const flow = body.dataset.flow;
const maxPrompt = Number(body.dataset.maxPrompt) || 0;

const els = {
  main: $("#main"),
  start: $("#start"),
  session: $("#session"),
  form: $("#generate"),
  prompt: $("#prompt"),
  projectType: $("#projectType"),
  generateBtn: $("#generate-btn"),
  generateError: $("#generate-error"),
  promptCount: $("#prompt-count"),
  recent: $("#recent"),
  recentList: $("#recent-list"),
  conversation: $("#conversation"),
  title: $("#project-title"),
  runBadge: $("#run-badge"),
  followup: $("#followup"),
  followupPrompt: $("#followup-prompt"),
  followupBtn: $("#followup-btn"),
  followupError: $("#followup-error"),
  followupCount: $("#followup-count"),
  followupNote: $("#followup-note"),
  cancelBtn: $("#cancel-btn"),
  projectsBtn: $("#projects-btn"),
  projectsDialog: $("#projects-dialog"),
  projectsList: $("#projects-dialog-list"),
  newBtn: $("#new-btn"),
  fileCount: $("#file-count"),
};

const state = {
  turns: [],
  runIds: new Set(),
  projectId: null,
  sandboxId: null,
  sandboxGone: false,
  projectType: els.projectType.value,
  agents: null,
  active: null, // {stream, turn}
};

const preview = new PreviewPanel({
  onShowLogs: () => selectTab("logs"),
  onRebuilt: () => refreshProjectInfo(),
});
preview.setStaticFiles(flow === "persistent");
const files = new FilesPanel({
  onCount: (n) => {
    els.fileCount.hidden = n === 0;
    els.fileCount.textContent = String(n);
  },
});
const feed = new ProjectFeed({ onForeignComplete: (event) => replayForeignRun(event) });

// ---------- views & tabs ----------

function showSession() {
  if (!els.session.hidden) return;
  els.start.hidden = true;
  els.session.hidden = false;
  els.main.dataset.view = "session";
}

const TABS = ["preview", "code", "logs"];
function selectTab(name, { focus = false } = {}) {
  for (const t of TABS) {
    const tab = $(`#tab-${t}`);
    const selected = t === name;
    tab.setAttribute("aria-selected", String(selected));
    tab.tabIndex = selected ? 0 : -1;
    $(`#panel-${t}`).hidden = !selected;
    if (selected && focus) tab.focus();
  }
  if (name === "code") files.openDefault();
}
for (const t of TABS) {
  const tab = $(`#tab-${t}`);
  tab.addEventListener("click", () => selectTab(t));
  tab.addEventListener("keydown", (event) => {
    const i = TABS.indexOf(t);
    let next = null;
    if (event.key === "ArrowRight") next = TABS[(i + 1) % TABS.length];
    else if (event.key === "ArrowLeft") next = TABS[(i + TABS.length - 1) % TABS.length];
    else if (event.key === "Home") next = TABS[0];
    else if (event.key === "End") next = TABS[TABS.length - 1];
    if (next) {
      event.preventDefault();
      selectTab(next, { focus: true });
    }
  });
}

// ---------- composer helpers ----------

function selectedAgents() {
  return [...els.form.querySelectorAll("input[name=agents]:checked")].map((i) => i.value);
}

function counter(textarea, out) {
  const update = () => {
    const n = textarea.value.length;
    const show = maxPrompt && n > maxPrompt * 0.5;
    out.textContent = show ? `${n.toLocaleString("en-US")} / ${maxPrompt.toLocaleString("en-US")}` : "";
    out.classList.toggle("over", Boolean(maxPrompt) && n > maxPrompt);
  };
  textarea.addEventListener("input", update);
  update();
}

function showFormError(target, err) {
  const box = target === "start" ? els.generateError : els.followupError;
  box.replaceChildren(
    h("span", { "aria-hidden": "true" }, "⚠"),
    h("span", {}, h("strong", {}, err.message), err.code ? h("span", { class: "code" }, err.code) : null),
  );
}

function clearFormErrors() {
  els.generateError.replaceChildren();
  els.followupError.replaceChildren();
}

function setBusy(busy) {
  for (const btn of [els.generateBtn, els.followupBtn]) {
    btn.disabled = busy;
    btn.setAttribute("aria-busy", String(busy));
  }
  els.generateBtn.querySelector(".btn-label").textContent = busy ? "Generating…" : "Generate";
  els.followupBtn.querySelector(".btn-label").textContent = busy ? "Working…" : "Send";
  els.cancelBtn.hidden = !busy;
  els.followupNote.hidden = !busy;
}

function setRunBadge(status) {
  els.runBadge.hidden = !status;
  if (status) {
    els.runBadge.dataset.status = status;
    els.runBadge.textContent = status;
  }
}

function setTitle(title) {
  els.title.textContent = title;
  els.title.title = title;
  document.title = `${title} · sandforge`;
}

function nearBottom() {
  const c = els.conversation;
  // On narrow screens the conversation does not scroll by itself; the page does.
  if (c.scrollHeight <= c.clientHeight + 4) return false;
  return c.scrollHeight - c.scrollTop - c.clientHeight < 120;
}

function scrollDown(force = false) {
  const c = els.conversation;
  if (force || nearBottom()) c.scrollTop = c.scrollHeight;
}

function projectKey() {
  if (state.projectId) return state.projectId;
  if (state.sandboxId && !state.sandboxGone) return state.sandboxId;
  return null;
}

function updateUrl() {
  const url = new URL(location.href);
  url.search = "";
  const key = projectKey();
  const lastRun = state.active?.stream.runId || state.turns.at(-1)?.runId;
  if (key) url.searchParams.set("project", key);
  else if (lastRun) url.searchParams.set("run", lastRun);
  if (url.href !== location.href) history.replaceState(null, "", url);
}

// ---------- the project ----------

function setProject(projectId) {
  if (!projectId || projectId === state.projectId) return;
  state.projectId = projectId;
  preview.setProject(projectId);
  files.setSource({ projectId });
  feed.open(projectId);
  updateUrl();
}

function setSandbox(sandboxId) {
  if (!sandboxId || sandboxId === state.sandboxId) return;
  state.sandboxId = sandboxId;
  state.sandboxGone = false;
  preview.setSandbox(sandboxId);
  files.setSource({ sandboxId });
  updateUrl();
}

/** Re-read the project (its sandbox may have been rebuilt under a new id). */
async function refreshProjectInfo() {
  if (!state.projectId) return null;
  try {
    const project = await api(`/api/projects/${encodeURIComponent(state.projectId)}`);
    if (project.sandboxId) setSandbox(project.sandboxId);
    if (project.previewUrl && !preview.share) preview.setShare(project.previewUrl, project.accessToken);
    return project;
  } catch {
    return null;
  }
}

// ---------- the conversation ----------

function conversationMessages() {
  const messages = [];
  for (const turn of state.turns) {
    messages.push({ role: "user", content: turn.prompt });
    const answer = turn.assistantContent;
    if (answer) messages.push({ role: "assistant", content: answer });
  }
  return messages;
}

function makeTurn(prompt) {
  return new TurnView({
    prompt,
    onFileClick: (path) => {
      selectTab("code");
      files.open(path);
    },
    onRetry: (turn) => generate(turn.prompt, "followup"),
    onOpenPreview: () => selectTab("preview", { focus: true }),
  });
}

function attachTurn(turn) {
  state.turns.push(turn);
  els.conversation.append(turn.el);
  scrollDown(true);
}

function onEvent(turn, event, seq) {
  const stick = nearBottom();
  turn.apply(event, seq);
  const data = event.data || {};
  if (!data.clientSide) {
    if (data.sandboxId) setSandbox(data.sandboxId);
    if (data.projectId) setProject(data.projectId);
  }
  switch (event.type) {
    case "progress":
      preview.setGenerating(true, data.message);
      break;
    case "tool":
      if (data.action !== "read") files.touched(data.action === "run" ? "" : data.file);
      break;
    case "complete":
      if (data.previewUrl) preview.setShare(data.previewUrl, data.accessToken);
      preview.setGenerating(false);
      files.refresh();
      break;
    case "error":
      files.cancelRefresh();
      preview.setGenerating(false);
      break;
    default:
      break;
  }
  if (stick) scrollDown(true);
}

function streamFor(turn) {
  return new RunStream({
    knownRunIds: new Set(state.runIds),
    onEvent: (event, seq) => onEvent(turn, event, seq),
    onRunId: (runId) => {
      turn.runId = runId;
      state.runIds.add(runId);
      updateUrl();
    },
    onProjectId: (projectId) => setProject(projectId),
    onState: (s, detail) => {
      turn.setConnection(s, detail);
      if (s === "reconnecting") setRunBadge("reconnecting");
      else if (s === "streaming" || s === "connecting") setRunBadge("running");
    },
  });
}

function badgeFor(turn) {
  if (!turn) return null;
  if (turn.complete) return "succeeded";
  if (turn.error) return turn.error.code === "cancelled" ? "cancelled" : "failed";
  return "running";
}

async function afterRun(turn) {
  state.active = null;
  setBusy(false);
  setRunBadge(badgeFor(turn));
  preview.setGenerating(false);
  if (turn.complete && state.projectId && state.turns.length === 1) {
    // Use the project's own name (the server derives it) once it exists.
    listProjects()
      .then((projects) => {
        const name = projects?.find((p) => p.id === state.projectId)?.name;
        if (name) setTitle(name);
      })
      .catch(() => {});
  }
  if (turn.error) {
    files.cancelRefresh();
    // A failed first run may take its sandbox (and project) with it; a follow-up then starts fresh.
    try {
      if (state.projectId) {
        const projects = await listProjects();
        if (projects && !projects.some((p) => p.id === state.projectId)) {
          state.projectId = null;
          feed.close();
        }
      }
      if (state.sandboxId && !(await findSandbox(state.sandboxId))) {
        state.sandboxGone = true;
        preview.poll();
      }
    } catch {
      /* keep what we know */
    }
  }
  updateUrl();
}

/** Send a prompt (a new project from the start form, or a follow-up on this one). */
async function generate(prompt, source) {
  if (state.active) {
    toast("A run is in progress; wait for it or stop it.", "info");
    return;
  }
  clearFormErrors();
  const messages = conversationMessages();
  messages.push({ role: "user", content: prompt });
  const request = {
    messages,
    projectType: state.projectType,
    agents: state.agents || selectedAgents(),
  };
  if (state.projectId) request.projectId = state.projectId;
  if (state.sandboxId && !state.sandboxGone) request.sandboxId = state.sandboxId;
  const turn = makeTurn(prompt);
  const stream = streamFor(turn);
  state.active = { stream, turn };
  setBusy(true);
  let attached = false;
  const baseState = stream.onState;
  stream.onState = (s, detail) => {
    if (s === "streaming" && !attached) {
      // The server accepted the request: show the turn.
      attached = true;
      if (!state.turns.length) setTitle(titleFrom(prompt));
      showSession();
      attachTurn(turn);
      preview.setGenerating(true, "Sending your prompt…");
      (source === "start" ? els.prompt : els.followupPrompt).value = "";
      els.prompt.dispatchEvent(new Event("input"));
      els.followupPrompt.dispatchEvent(new Event("input"));
      els.followupPrompt.focus({ preventScroll: true });
    }
    baseState(s, detail);
  };
  try {
    await stream.start(endpoint, request, request.sandboxId || null);
  } catch (err) {
    if (!(err instanceof ApiError)) throw err;
    if (attached) turn.apply({ type: "error", data: { message: err.message, code: err.code, clientSide: true } }, 0);
    else {
      showFormError(source, err);
      (source === "start" ? els.prompt : els.followupPrompt).focus();
    }
  } finally {
    await afterRun(turn);
  }
}

// ---------- reopening past work ----------

async function replayRun(run) {
  const turn = makeTurn(run.prompt);
  attachTurn(turn);
  state.runIds.add(run.runId);
  turn.runId = run.runId;
  const stream = streamFor(turn);
  const live = run.state === "running";
  if (live) {
    state.active = { stream, turn };
    setBusy(true);
  }
  await stream.follow(run.runId);
  if (live) await afterRun(turn);
  return turn;
}

async function openProject({ key, runId }) {
  showSession();
  setTitle("Loading project…");
  let project = null;
  let runs = [];
  try {
    if (runId && !key) {
      const run = await api(`/api/runs/${encodeURIComponent(runId)}`);
      key = run.projectId || run.sandboxId || null;
      if (!key) runs = [run];
    }
    if (key) {
      const projects = await listProjects();
      if (projects?.some((p) => p.id === key)) project = await api(`/api/projects/${encodeURIComponent(key)}`);
      const query = project ? `?projectId=${encodeURIComponent(project.id)}` : "";
      const all = (await api(`/api/runs${query}`)).runs;
      runs = all.filter((r) => (project ? r.projectId === project.id : r.sandboxId === key || r.projectId === key));
    }
  } catch (err) {
    toast(err.message, "error", 6000);
  }
  runs.sort((a, b) => a.createdAt - b.createdAt);

  let sandbox = null;
  const sandboxId = project ? project.sandboxId : key && !key.startsWith("pj") ? key : runs.at(-1)?.sandboxId;
  if (sandboxId) {
    try {
      sandbox = await findSandbox(sandboxId);
    } catch {
      sandbox = null;
    }
  }
  setTitle(titleFrom(runs[0]?.prompt, project?.name || sandbox?.labels?.project) || "Project");
  state.projectType = project?.projectType || runs.at(-1)?.projectType || state.projectType;
  if (project?.agents?.length) state.agents = project.agents;

  if (!project && !runs.length) {
    els.conversation.append(
      h(
        "div",
        { class: "callout callout-warn", role: "note" },
        h("p", { class: "callout-title" }, sandbox ? "The conversation is not available" : "Project not found"),
        h("p", {}, sandbox ? "This server no longer has the project's runs, but its sandbox is still here: you can look at it and send a follow-up." : "There is no project with that id on this server. It may have been deleted."),
        h("div", { class: "actions" }, h("a", { class: "btn btn-sm", href: location.pathname }, "Start a new project")),
      ),
    );
  }
  if (project) setProject(project.id);
  if (sandbox) setSandbox(sandbox.id);
  if (project?.previewUrl && (project.flow === "persistent" || !runs.length)) preview.setShare(project.previewUrl, project.accessToken);

  for (const run of runs) await replayRun(run);

  if (project && project.previewUrl && !preview.share) preview.setShare(project.previewUrl, project.accessToken);
  if (sandboxId && !sandbox) {
    state.sandboxId = sandboxId;
    state.sandboxGone = true;
    preview.setSandbox(sandboxId); // "gone": rebuild (with a project) or start over
  }
  setRunBadge(badgeFor(state.turns.at(-1)));
  scrollDown(true);
  updateUrl();
}

/** Someone else (another tab, another person) finished a run on this project: show it. */
async function replayForeignRun(event) {
  const runId = event.data?.runId;
  if (!runId || state.runIds.has(runId) || state.active) return;
  try {
    const run = await api(`/api/runs/${encodeURIComponent(runId)}`);
    if (state.runIds.has(runId) || state.active) return;
    toast("This project was updated in another session", "info");
    await replayRun(run);
    setRunBadge(badgeFor(state.turns.at(-1)));
  } catch {
    /* the next event will try again */
  }
}

// ---------- projects ----------

async function refreshRecent() {
  try {
    const projects = await loadProjects();
    els.recent.hidden = projects.length === 0;
    renderProjects(els.recentList, projects, { limit: 6 });
  } catch {
    els.recent.hidden = true;
  }
}

els.projectsBtn.addEventListener("click", async () => {
  els.projectsList.replaceChildren(h("li", { class: "empty-note" }, "Loading…"));
  els.projectsDialog.showModal();
  try {
    renderProjects(els.projectsList, await loadProjects(), { current: projectKey() });
  } catch (err) {
    els.projectsList.replaceChildren(h("li", { class: "empty-note" }, err.message));
  }
});
els.projectsDialog.addEventListener("click", (event) => {
  if (event.target === els.projectsDialog || event.target.closest("[data-close]")) els.projectsDialog.close();
});

// ---------- wiring ----------

els.newBtn.href = location.pathname;
els.projectType.addEventListener("change", () => (state.projectType = els.projectType.value));

for (const button of document.querySelectorAll(".example")) {
  button.addEventListener("click", () => {
    els.prompt.value = button.dataset.prompt;
    els.prompt.dispatchEvent(new Event("input"));
    els.prompt.focus();
    els.prompt.setSelectionRange(els.prompt.value.length, els.prompt.value.length);
  });
}

els.form.addEventListener("submit", (event) => {
  event.preventDefault();
  state.projectType = els.projectType.value;
  state.agents = selectedAgents();
  generate(els.prompt.value, "start");
});

els.followup.addEventListener("submit", (event) => {
  event.preventDefault();
  generate(els.followupPrompt.value, "followup");
});

els.cancelBtn.addEventListener("click", async () => {
  const active = state.active;
  if (!active) return;
  els.cancelBtn.disabled = true;
  try {
    const runId = active.stream.runId || (await active.stream.discover());
    if (!runId) throw new ApiError(0, "unknown_run", "This run cannot be stopped yet; try again in a moment.");
    await api(`/api/runs/${encodeURIComponent(runId)}/cancel`, { method: "POST" });
    toast("Stopping the run…");
  } catch (err) {
    toast(err.message, "error", 6000);
  } finally {
    els.cancelBtn.disabled = false;
  }
});

submitOnModEnter(els.prompt);
submitOnModEnter(els.followupPrompt);
counter(els.prompt, els.promptCount);
counter(els.followupPrompt, els.followupCount);
localiseKbdHints();

const params = new URLSearchParams(location.search);
if (params.get("project") || params.get("run")) {
  openProject({ key: params.get("project"), runId: params.get("run") });
} else {
  refreshRecent();
  if (params.get("prompt")) els.prompt.value = params.get("prompt");
  // Ready to type on desktop; on touch screens, no keyboard popping up uninvited.
  if (matchMedia("(pointer: fine)").matches) els.prompt.focus();
}
