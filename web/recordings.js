// The "Replay" menu of the live page: the server's recordings (/api/recordings), each a link into
// replay mode with the charts on screen. A link rather than a switch in place: replay data never
// mixes with live data, and Back returns to the live page.

import { fetchRecordings } from "./api.js";
import { fmtDateTime, fmtDuration } from "./format.js";

export class RecordingMenu {
  // href(name) -> the URL of the replay of that recording.
  constructor(button, menu, { href }) {
    this.button = button;
    this.menu = menu;
    this.href = href;
    button.hidden = false;
    button.addEventListener("click", () => (menu.hidden ? this.show() : this.hide()));
    addEventListener("pointerdown", (event) => {
      if (!menu.hidden && !event.target.closest(".replay-picker")) this.hide();
    });
    addEventListener("keydown", (event) => {
      if (event.key === "Escape" && !menu.hidden) {
        this.hide();
        button.focus();
      }
    });
  }

  async show() {
    this.menu.hidden = false;
    this.button.setAttribute("aria-expanded", "true");
    this.menu.textContent = "Loading\u2026";
    let list;
    try {
      list = await fetchRecordings();
    } catch (error) {
      this.menu.textContent = `Recordings unavailable (${error.message})`;
      return;
    }
    this.menu.textContent = "";
    const title = document.createElement("p");
    title.className = "menu-title";
    title.textContent = list.length ? "Replay a recording" : "No recordings yet";
    this.menu.append(title);
    if (!list.length) {
      const hint = document.createElement("p");
      hint.className = "menu-hint";
      hint.textContent = "Run the server with --record DIR, or put recordings (.jsonl) in its "
        + "recordings directory.";
      this.menu.append(hint);
    }
    for (const entry of list) this.menu.append(this._item(entry));
    this.menu.querySelector("a")?.focus();
  }

  hide() {
    this.menu.hidden = true;
    this.button.setAttribute("aria-expanded", "false");
  }

  _item(entry) {
    const link = document.createElement("a");
    link.className = "recording";
    link.dataset.name = entry.name;
    link.href = this.href(entry.name);
    const name = document.createElement("b");
    name.textContent = entry.name;
    const when = document.createElement("span");
    const span = entry.first_ts !== null && entry.last_ts !== null
      ? `${fmtDateTime(entry.first_ts)} \u00B7 ${fmtDuration(entry.last_ts - entry.first_ts)}`
      : "empty";
    when.textContent = span;
    const what = document.createElement("small");
    const count = entry.symbols.length;
    what.textContent = `${count} symbol${count === 1 ? "" : "s"} \u00B7 `
      + `${entry.tick_count.toLocaleString("en-US")} trades`;
    what.title = entry.symbols.join(", ");
    link.append(name, when, what);
    return link;
  }
}
