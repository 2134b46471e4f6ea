// Shipping a project out: its zip, its published URL, its cost.
import { api, projectPath } from "./api.js";
import { $, copyText, toast } from "./dom.js";

/** A cost in US dollars: cents, or a tenth of a cent's precision below a cent. */
export function usd(amount) {
  return amount >= 0.01 || amount === 0 ? `$${amount.toFixed(2)}` : `$${amount.toFixed(4)}`;
}

export class ShipBar {
  constructor() {
    this.download = $("#download-zip");
    this.cost = $("#project-cost");
    this.publishBtn = $("#publish-btn");
    this.published = $("#published");
    this.publishedUrl = $("#published-url");
    this.projectId = null;
    this.built = false;
    this.site = null; // the published site: {url, version}, or null
    this.busy = false;
    this.publishBtn.addEventListener("click", () => this.publish());
    $("#unpublish-btn").addEventListener("click", () => this.unpublish());
    $("#copy-published").addEventListener("click", async () => {
      const ok = this.site && (await copyText(this.site.url));
      toast(ok ? "Published URL copied" : "Could not copy; select the URL and copy it", ok ? "ok" : "error");
    });
  }

  /** The project shown, and whether it has a saved version to ship. */
  setProject(projectId, built) {
    const changed = projectId !== this.projectId;
    this.projectId = projectId;
    this.built = built;
    if (changed) {
      this.site = null;
      this.refresh();
    }
    this.render();
  }

  /** Read the project's cost and published site again (a run ended, or another project). */
  async refresh() {
    const projectId = this.projectId;
    if (!projectId) return;
    const [usage, site] = await Promise.allSettled([api(`${projectPath(projectId)}/usage`), api(`${projectPath(projectId)}/publish`)]);
    if (projectId !== this.projectId) return;
    if (usage.status === "fulfilled") this.showCost(usage.value.total);
    if (site.status === "fulfilled") this.site = site.value.site;
    this.render();
  }

  async publish() {
    await this.act("Publishing: building the latest version…", async () => {
      this.site = await api(`${projectPath(this.projectId)}/publish`, { method: "POST" });
      toast(`Published version ${this.site.version}`, "ok");
    });
  }

  async unpublish() {
    await this.act("Unpublishing…", async () => {
      await api(`${projectPath(this.projectId)}/publish`, { method: "DELETE" });
      this.site = null;
      toast("Unpublished: the URL answers 404 now", "ok");
    });
  }

  async act(pending, work) {
    this.busy = true;
    this.publishBtn.textContent = pending.split(":")[0].replace("…", "") + "…";
    this.render();
    try {
      await work();
    } catch (err) {
      toast(err.message, "error", 8000);
    } finally {
      this.busy = false;
      this.render();
    }
  }

  showCost(total) {
    this.cost.hidden = total.runs === 0;
    const unpriced = total.unpricedRuns ? ` (+${total.unpricedRuns} unpriced)` : "";
    this.cost.textContent = `Total ${usd(total.costUsd)}${unpriced}`;
    const tokens = (total.inputTokens + total.outputTokens).toLocaleString("en-US");
    this.cost.title = `${total.runs} runs · ${tokens} tokens · ${Math.round(total.sandboxWallSeconds)} s of sandbox time`;
  }

  render() {
    const ready = Boolean(this.projectId && this.built);
    if (ready) this.download.href = `${projectPath(this.projectId)}/export.zip`;
    else this.download.removeAttribute("href");
    this.download.setAttribute("aria-disabled", String(!ready));
    this.download.tabIndex = ready ? 0 : -1;
    this.publishBtn.disabled = !ready || this.busy;
    if (!this.busy) this.publishBtn.textContent = this.site ? "Republish" : "Publish";
    this.published.hidden = !this.site;
    if (this.site) {
      this.publishedUrl.href = this.site.url;
      this.publishedUrl.textContent = this.site.url;
    }
  }
}
