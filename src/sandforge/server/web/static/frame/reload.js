// Injected by sandforge's preview proxy into the editor's own preview frame only (never into
// share links or public previews): reloads the page after the model writes a file, debounced,
// for project types whose dev server does not update the page by itself.
// It talks only to this preview's own origin; the sandforge API is never reached from here.
(() => {
  if (window.__sandforgeReload) return; // a page that loads it twice
  window.__sandforgeReload = true;
  const QUIET_MS = 150; // a burst of writes reloads once, after it
  const MAX_WAIT_MS = 600; // but a long burst still shows within a second
  const since = document.currentScript?.dataset.sandforgeSince || "";
  let first = 0;
  let timer = 0;

  function reloadSoon() {
    const now = Date.now();
    if (!first) first = now;
    clearTimeout(timer);
    const wait = Math.max(0, Math.min(QUIET_MS, first + MAX_WAIT_MS - now));
    timer = setTimeout(() => location.reload(), wait);
  }

  // `since`: the files may change while this page loads; the server then says `stale` at once.
  const changes = new EventSource(`/.sandforge/frame/changes?since=${encodeURIComponent(since)}`);
  changes.addEventListener("message", reloadSoon);
  changes.addEventListener("stale", reloadSoon);
  addEventListener("pagehide", () => changes.close());
})();
