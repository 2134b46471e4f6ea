// The workspace tabs (Preview, Code, Logs): click, or arrow keys / Home / End as in the ARIA tabs pattern.
import { $ } from "./dom.js";

export class Tabs {
  /**
   * @param {string[]} names  tab "x" is #tab-x, its panel #panel-x
   * @param {(name: string) => void} onSelect
   */
  constructor(names, onSelect) {
    this.names = names;
    this.onSelect = onSelect;
    names.forEach((name, i) => {
      const tab = $(`#tab-${name}`);
      tab.addEventListener("click", () => this.select(name));
      tab.addEventListener("keydown", (event) => {
        const next = { ArrowRight: names[(i + 1) % names.length], ArrowLeft: names[(i + names.length - 1) % names.length], Home: names[0], End: names.at(-1) }[event.key];
        if (next) {
          event.preventDefault();
          this.select(next, { focus: true });
        }
      });
    });
  }

  select(name, { focus = false } = {}) {
    for (const other of this.names) {
      const tab = $(`#tab-${other}`);
      const selected = other === name;
      tab.setAttribute("aria-selected", String(selected));
      tab.tabIndex = selected ? 0 : -1;
      $(`#panel-${other}`).hidden = !selected;
      if (selected && focus) tab.focus();
    }
    this.onSelect(name);
  }
}
