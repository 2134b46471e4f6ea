// Shipping a project out: its zip, its published URL, its GitHub repository, its cost.
import { api, projectPath } from "./api.js";
import { $ } from "./dom.js";

/** A cost in US dollars: cents, or a tenth of a cent's precision below a cent. */
export function usd(amount) {
  return amount >= 0.01 || amount === 0 ? `$${amount.toFixed(2)}` : `$${amount.toFixed(4)}`;
}

export class ShipBar {
  constructor() {
    this.download = $("#download-zip");
    this.cost = $("#project-cost");
    this.projectId = null;
    this.built = false;
  }

  /** The project shown, and whether it has a saved version to ship. */
  setProject(projectId, built) {
    const changed = projectId !== this.projectId;
    this.projectId = projectId;
    this.built = built;
    this.render();
    if (changed) this.refresh();
  }

  /** A run ended: its cost is in the ledger now. */
  async refresh() {
    const projectId = this.projectId;
    if (!projectId) return;
    try {
      const usage = await api(`${projectPath(projectId)}/usage`);
      if (projectId !== this.projectId) return;
      this.showCost(usage.total);
    } catch {
      /* the figure stays as it was; the next run's end tries again */
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
  }
}
