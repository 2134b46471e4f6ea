// One project's session: its record, its sandbox, its turns and the run in progress.
// Reopened in one call (GET /api/sessions/{id} takes a project, run or sandbox id); every run
// of the project streams through here, whether this page started it or another viewer did.
import { api, runPath, sessionPath, ApiError } from "./api.js";
import { RunStream } from "./runstream.js";
import { ProjectFeed } from "./feed.js";
import { titleFrom } from "./projects.js";

export class Session {
  /**
   * @param {object} opts
   * @param {string} opts.endpoint  where a prompt is POSTed (the page's flow)
   * @param {import("./connection.js").ServerConnection} opts.connection
   * @param {import("./conversation.js").Conversation} opts.conversation
   * @param {object} opts.hooks
   * @param {() => void} opts.hooks.onChange  anything about the session changed: redraw from it
   * @param {(turn, event, how: {restoring: boolean}) => void} opts.hooks.onEvent  after the turn shows it
   * @param {(turn) => void} opts.hooks.onForeignRun  another viewer's run was added
   * @param {(version: number) => void} [opts.hooks.onVersion]  a restore or manual edit saved `version`
   */
  constructor({ endpoint, connection, conversation, hooks }) {
    this.endpoint = endpoint;
    this.connection = connection;
    this.conversation = conversation;
    this.hooks = hooks;
    this.project = null; // the project record, once the server has one
    this.projectId = null; // known before the record: the POST's response names it
    this.sandboxId = null;
    this.sandboxGone = false;
    this.sandboxRunning = true;
    this.projectType = null;
    this.agents = null;
    this.turns = [];
    this.active = null; // {stream, turn, state}: the run in progress
    this.feed = new ProjectFeed({
      connection,
      onForeignComplete: (event) => this.addForeignRun(event),
      onVersion: (version) => this.hooks.onVersion?.(version),
    });
  }

  get title() {
    return this.project?.name || titleFrom(this.turns[0]?.prompt);
  }

  /** Some run finished a version: the project's preview serves something. */
  get built() {
    return this.turns.some((turn) => turn.complete);
  }

  /** Where the code lives right now: the sandbox while it runs, else null (the saved files). */
  get liveSandboxId() {
    return this.sandboxGone || !this.sandboxRunning ? null : this.sandboxId;
  }

  /** running, reconnecting, offline; or how the last turn ended; or null before any turn. */
  get runStatus() {
    if (this.active) return this.active.state;
    return this.turns.at(-1)?.outcome || null;
  }

  get lastRunId() {
    return this.active?.stream.runId || this.turns.at(-1)?.runId || null;
  }

  /** Reopen a session from any of its ids. False when the server has no such project. */
  async restore(id) {
    let body;
    try {
      body = await api(sessionPath(id));
    } catch (err) {
      if (err instanceof ApiError && err.code === "project_not_found") return false;
      throw err;
    }
    this.adopt(body);
    const runs = [...body.runs].sort((a, b) => a.createdAt - b.createdAt);
    for (const run of runs) await this.replay(run, { restoring: run.state !== "running" });
    this.hooks.onChange();
    return true;
  }

  /** Take what GET /api/sessions/{id} says about the project and its sandbox. */
  adopt({ project, sandbox, sandboxGone }) {
    this.project = project;
    this.setProjectId(project.id);
    this.projectType = project.projectType;
    if (project.agents?.length) this.agents = project.agents;
    // While a run goes, its events say which sandbox it uses; the record may lag behind.
    if (!this.active) {
      this.sandboxId = sandbox?.id || project.sandboxId;
      this.sandboxGone = sandboxGone;
      this.sandboxRunning = sandbox?.state === "started";
    }
    this.hooks.onChange();
  }

  /** Read the project again: its name, link and sandbox change as runs go. */
  async refresh() {
    if (!this.projectId) return;
    try {
      this.adopt(await api(sessionPath(this.projectId)));
    } catch {
      /* offline or deleted: keep what we know; the connection banner or the next look says so */
    }
  }

  setProjectId(projectId) {
    if (!projectId || projectId === this.projectId) return;
    this.projectId = projectId;
    this.feed.open(projectId);
    // A new project: its record has the share link, ready before the first run ends.
    if (this.project?.id !== projectId) this.refresh();
    this.hooks.onChange();
  }

  /** The start form's choices, for a new project (a follow-up keeps the project's own). */
  configure({ projectType, agents, model, sandbox }) {
    this.projectType = projectType;
    this.agents = agents;
    this.model = model;
    this.provider = sandbox;
  }

  setSandbox(sandboxId) {
    if (sandboxId === this.sandboxId && !this.sandboxGone) return;
    this.sandboxId = sandboxId;
    this.sandboxGone = false;
    this.sandboxRunning = true;
    this.hooks.onChange();
  }

  /** What the preview's poll saw. While a run goes, its own events are the truth instead. */
  observeSandbox(sandboxId, running) {
    if (this.active) return;
    if (sandboxId === (this.sandboxGone ? null : this.sandboxId) && running === this.sandboxRunning) return;
    if (sandboxId) this.sandboxId = sandboxId;
    this.sandboxGone = !sandboxId;
    this.sandboxRunning = running;
    this.hooks.onChange();
  }

  /** The request body for `prompt` (and its images): the conversation so far, then the prompt. */
  request(prompt, images = [], elements = []) {
    const messages = [];
    for (const turn of this.turns) {
      messages.push({ role: "user", content: turn.prompt });
      const answer = turn.assistantContent;
      if (answer) messages.push({ role: "assistant", content: answer });
    }
    messages.push({ role: "user", content: prompt });
    const body = { messages, projectType: this.projectType, agents: this.agents };
    if (images.length) body.images = images;
    if (elements.length) body.elements = elements;
    if (this.projectId) body.projectId = this.projectId;
    // A new project's model; afterwards the project's own choice applies (the picker saves it).
    else {
      if (this.model) body.model = this.model;
      if (this.provider) body.sandbox = this.provider;
    }
    if (this.sandboxId && !this.sandboxGone) body.sandboxId = this.sandboxId;
    return body;
  }

  /**
   * Send a prompt: a new project's first, or a follow-up. Throws ApiError when the server refuses
   * it (the turn never shows then); once accepted, calls `onAccepted` and follows the run to its end.
   */
  async send(prompt, { onAccepted, images = [], imageUrls = [], elements = [] }) {
    const body = this.request(prompt, images, elements);
    let accepted = false;
    const turn = this.conversation.create(prompt, { onReconnect: () => stream.reconnectNow() });
    turn.showImages(imageUrls);
    turn.showElements(elements);
    const stream = this.streamFor(turn, {
      restoring: false,
      onAccepted: () => {
        accepted = true;
        this.turns.push(turn);
        this.conversation.attach(turn);
        onAccepted(turn);
      },
    });
    this.active = { stream, turn, state: "running" };
    this.hooks.onChange();
    try {
      await stream.start(this.endpoint, body);
    } finally {
      if (accepted) await this.finish();
      else {
        this.active = null;
        this.hooks.onChange();
      }
    }
  }

  /** Ask the server to stop the run in progress; its stopped turn arrives on the stream. */
  async cancel() {
    const { stream, turn } = this.active;
    turn.setStopping();
    const runId = stream.runId || (await stream.discover());
    if (!runId) throw new ApiError(409, "not_started", "This run cannot be stopped yet; try again in a moment.");
    await api(`${runPath(runId)}/cancel`, { method: "POST" });
  }

  /** Show a run of this project that this page did not start, and follow it if it still goes. */
  async replay(run, { restoring }) {
    const turn = this.conversation.create(run.prompt, { onReconnect: () => stream.reconnectNow() });
    turn.runId = run.runId;
    turn.showImages(Array.from({ length: run.images || 0 }, (_, i) => `${runPath(run.runId)}/images/${i}`));
    turn.showElements(run.elements || []);
    this.turns.push(turn);
    this.conversation.attach(turn);
    const stream = this.streamFor(turn, { restoring });
    if (run.state !== "running") {
      await stream.follow(run.runId);
      return turn;
    }
    this.active = { stream, turn, state: "running" };
    this.hooks.onChange();
    // Not awaited: the page is usable while a live run is followed.
    stream.follow(run.runId).then(() => this.finish());
    return turn;
  }

  /** Another viewer finished a run on this project. */
  async addForeignRun(event) {
    const runId = event.data?.runId;
    if (!runId || this.knowsRun(runId) || this.active) return;
    try {
      const run = await api(runPath(runId));
      if (this.knowsRun(runId) || this.active) return;
      const turn = await this.replay(run, { restoring: false });
      await this.refresh();
      this.hooks.onForeignRun(turn);
    } catch {
      /* the next event will try again */
    }
  }

  knowsRun(runId) {
    return this.turns.some((turn) => turn.runId === runId);
  }

  streamFor(turn, { restoring, onAccepted }) {
    const otherRuns = new Set(this.turns.map((t) => t.runId).filter(Boolean));
    let accepted = false;
    return new RunStream({
      connection: this.connection,
      knownRunIds: otherRuns,
      onEvent: (event, seq) => this.onEvent(turn, event, seq, restoring),
      onRunId: (runId) => {
        turn.runId = runId;
        this.hooks.onChange();
      },
      onProjectId: (projectId) => this.setProjectId(projectId),
      onState: (state, detail) => {
        if (state === "streaming" && !accepted) {
          accepted = true;
          onAccepted?.();
        }
        turn.setConnection(state, detail);
        if (this.active?.turn === turn) {
          this.active.state = state === "reconnecting" || state === "offline" ? state : "running";
          this.hooks.onChange();
        }
      },
    });
  }

  onEvent(turn, event, seq, restoring) {
    this.conversation.keepingBottom(() => turn.apply(event, seq));
    const data = event.data || {};
    // A replayed run names the sandboxes of its day; the session record says which is current.
    if (!data.clientSide && !restoring) {
      if (data.sandboxId) this.setSandbox(data.sandboxId);
      if (data.projectId) this.setProjectId(data.projectId);
    }
    this.hooks.onEvent(turn, event, { restoring });
  }

  async finish() {
    this.active = null;
    // A finished run renames the project and may have replaced or deleted its sandbox.
    await this.refresh();
    this.hooks.onChange();
  }
}
