// What the end of a run means for the user: live, live with problems, stopped or failed;
// the problems a rendered check left; and what to do next after an error.

// "Check the logs" helps only when it says which: these are the three places logs live.
const SERVER_TERMINAL = "the terminal where the sandforge server runs (its output has the full error)";
const DEV_SERVER_LOG = "the dev server log in the Logs tab";
const BROWSER_CONSOLE = "the browser's devtools console (F12) while the preview is open";

const MAX_PROBLEMS_IN_PROMPT = 10;
const MAX_PROBLEM_CHARS = 500;

/** The opening line of the follow-up that "Fix it" sends. */
const FIX_IT_OPENING = "Fix these problems the preview still shows:";

/** How a finished turn ended: "succeeded", "problems", "stopped" or "failed". */
export function outcomeOf({ complete, error }) {
  if (complete) return problemsOf(complete).length ? "problems" : "succeeded";
  if (error) return error.code === "cancelled" ? "stopped" : "failed";
  return null;
}

/**
 * The problems a finished run left in its preview, in words: what automatic repair could not fix,
 * else what the rendered check found. Empty when the app rendered cleanly (or was not checked).
 */
export function problemsOf(complete) {
  const remaining = complete.repairs?.remaining;
  if (Array.isArray(remaining) && remaining.length) return remaining.map(String);
  const render = complete.render;
  if (!render || render.ok !== false) return [];
  if (Array.isArray(render.problems) && render.problems.length) return render.problems.map(String);
  const found = [];
  if (render.notApp) found.push(typeof render.notApp === "string" ? `The preview is not the app: ${render.notApp}` : "The preview shows a page that is not the app");
  if (render.blank) found.push("The page renders blank");
  for (const exception of render.exceptions || []) found.push(`Uncaught exception: ${exception.message || exception}`);
  for (const message of render.consoleErrors || []) found.push(`Console error: ${message}`);
  for (const failed of render.failedRequests || []) found.push(`Failed request: ${failed}`);
  return found;
}

/** The follow-up prompt that asks the model to fix what is left. */
export function fixItPrompt(problems) {
  const listed = problems.slice(0, MAX_PROBLEMS_IN_PROMPT).map((p) => `- ${p.length > MAX_PROBLEM_CHARS ? `${p.slice(0, MAX_PROBLEM_CHARS)}…` : p}`);
  const more = problems.length - listed.length;
  return [FIX_IT_OPENING, ...listed, ...(more > 0 ? [`- …and ${more} more like these`] : [])].join("\n");
}

/** A title and next steps for an error event, matched to the error that occurred. */
export function troubleshoot(data) {
  const message = data.message || "";
  const code = data.code || "";
  if (/DAYTONA_API_KEY/.test(message) || code === "daytona_unauthorized") {
    return { title: "Daytona is not configured", steps: ["Add a valid DAYTONA_API_KEY to your .env file and restart the sandforge server.", `Read ${SERVER_TERMINAL}.`] };
  }
  if (code === "interrupted") {
    return {
      title: "The server stopped during this run",
      steps: ["Start the sandforge server again if it is not running (sandforge serve).", "Send the prompt again: everything the run stored before the stop is kept."],
    };
  }
  if (code === "worker_exited") {
    return { title: "The generation process stopped", steps: [`Read ${SERVER_TERMINAL}: it says why the process exited.`, "Check that the model's API key is valid (ANTHROPIC_API_KEY, or the key of the model in SANDFORGE_MODEL).", "Try again."] };
  }
  if (code === "dev_server_failed") {
    return { title: "The preview did not come up", steps: [`Read ${DEV_SERVER_LOG}: it shows why the dev server did not start.`, "Wait a few seconds and reload the preview: the server may still be starting.", "Try again, or ask for a fix of the error it shows."] };
  }
  if (code === "missing_entry_file") {
    return { title: "Nothing to preview", steps: ["Try again, or ask for index.html explicitly in the prompt."] };
  }
  if (code === "lost_run" || code === "run_not_found") {
    return { title: "Lost track of the run", steps: ["Check that the sandforge server is running.", "Reopen the project from Projects to see what it produced."] };
  }
  if (code === "model_connection" || code === "model_timeout" || code === "model_unavailable") {
    return { title: "The model did not answer", steps: ["Check that this machine can reach the model's API (the network, a proxy, or your local model server).", `Read ${SERVER_TERMINAL}.`, "Try again."] };
  }
  if (code === "model_rate_limited" || code === "model_quota") {
    return { title: "The model's provider refused more requests", steps: ["Wait a minute and try again, or check your plan's limits with the provider.", `Read ${SERVER_TERMINAL}.`] };
  }
  if (code.startsWith("model_") || /api[_ ]?key|authentication|unauthori[sz]ed|401/i.test(message)) {
    return { title: "The model could not be used", steps: ["Check the model's API key (ANTHROPIC_API_KEY), or SANDFORGE_MODEL and its key.", "Restart the sandforge server after changing .env.", `Read ${SERVER_TERMINAL}.`] };
  }
  if (code.startsWith("sandbox_") || code === "disk_full" || /bwrap|bubblewrap|namespace/i.test(message)) {
    return { title: "The sandbox failed", steps: ["Run sandforge doctor to check the set-up (bubblewrap, user namespaces, disk space).", `Read ${SERVER_TERMINAL}.`, "Try again."] };
  }
  if (code === "budget_reached") {
    return {
      title: "The spending budget is reached",
      steps: [
        "The files written so far are kept as a new version, and the preview serves them.",
        "To go on, raise the budget the message names (its SANDFORGE_BUDGET_…_USD setting in .env) or unset it, restart the sandforge server, then send a follow-up.",
        "See what was spent with sandforge usage in a terminal, or GET /api/usage.",
      ],
    };
  }
  if (code === "insufficient_storage") {
    return { title: "The server's disk is full", steps: ["Free space on the disk that holds sandforge's data dir (its database and projects).", "Try again."] };
  }
  if (code === "internal") {
    return { title: "Something went wrong inside sandforge", steps: [`Read ${SERVER_TERMINAL}, or the technical details below.`, "Try again; if it keeps happening, report it with those details."] };
  }
  if (/network|connect|timed? ?out/i.test(message)) {
    return { title: "A service did not answer", steps: ["Check this machine's network connection.", `Read ${SERVER_TERMINAL}: it names the service.`, "Try again."] };
  }
  return { title: "The generation failed", steps: [`Read ${SERVER_TERMINAL}.`, "Try again; if it keeps failing, rephrase the prompt."] };
}

/** Where to look for errors in the app itself (for the problems card). */
export const APP_ERRORS_HINT = `More detail: ${BROWSER_CONSOLE}, and ${DEV_SERVER_LOG}.`;
