// The "add symbol" box: suggestions by symbol prefix first, then by symbol or company name
// containing the text, with the keyboard behaviour of a combobox (arrows, Enter, Escape).

const MAX_SUGGESTIONS = 8;

export class SymbolSearch {
  constructor(input, list, { onPick }) {
    this.input = input;
    this.list = list;
    this.onPick = onPick;
    this.entries = []; // [{symbol, name}]
    this.charted = new Set();
    this.matches = [];
    this.active = -1;
    input.addEventListener("input", () => this._suggest());
    input.addEventListener("focus", () => this._suggest());
    input.addEventListener("blur", () => this._close());
    input.addEventListener("keydown", (event) => this._key(event));
    // mousedown, not click: a click would first blur the input and close the list.
    list.addEventListener("mousedown", (event) => {
      const option = event.target.closest("[role=option]");
      if (!option) return;
      event.preventDefault();
      this._pick(option.dataset.symbol);
    });
    addEventListener("keydown", (event) => {
      if (event.key === "/" && !event.target.closest("input, textarea, select")) {
        event.preventDefault();
        input.focus();
      }
    });
  }

  setEntries(entries) {
    this.entries = entries;
  }

  setCharted(symbols) {
    this.charted = new Set(symbols);
  }

  _suggest() {
    const query = this.input.value.trim().toUpperCase();
    if (!query) {
      this._close();
      return;
    }
    const ranked = [];
    for (const entry of this.entries) {
      const symbol = entry.symbol;
      const rank = symbol === query ? 0 : symbol.startsWith(query) ? 1
        : symbol.includes(query) ? 2 : entry.name.toUpperCase().includes(query) ? 3 : -1;
      if (rank >= 0) ranked.push([rank, entry]);
    }
    ranked.sort((a, b) => a[0] - b[0] || a[1].symbol.localeCompare(b[1].symbol));
    this.matches = ranked.slice(0, MAX_SUGGESTIONS).map(([, entry]) => entry);
    this.active = this.matches.length ? 0 : -1;
    this._render(query);
  }

  _render(query) {
    this.list.textContent = "";
    if (!this.matches.length) {
      const empty = document.createElement("li");
      empty.className = "empty";
      empty.textContent = `No symbol matches \u201C${query}\u201D`;
      this.list.append(empty);
    }
    this.matches.forEach((entry, index) => {
      const option = document.createElement("li");
      option.id = `suggestion-${index}`;
      option.setAttribute("role", "option");
      option.dataset.symbol = entry.symbol;
      option.setAttribute("aria-selected", String(index === this.active));
      const symbol = document.createElement("b");
      symbol.textContent = entry.symbol;
      const name = document.createElement("span");
      name.textContent = entry.name;
      option.append(symbol, name);
      if (this.charted.has(entry.symbol)) {
        const tag = document.createElement("em");
        tag.textContent = "charted";
        option.append(tag);
      }
      this.list.append(option);
    });
    this.list.hidden = false;
    this.input.setAttribute("aria-expanded", "true");
    this._activate(this.active);
  }

  _activate(index) {
    this.active = index;
    for (const option of this.list.querySelectorAll("[role=option]")) {
      option.setAttribute("aria-selected", String(option.id === `suggestion-${index}`));
    }
    if (index >= 0) this.input.setAttribute("aria-activedescendant", `suggestion-${index}`);
    else this.input.removeAttribute("aria-activedescendant");
  }

  _key(event) {
    const count = this.matches.length;
    if (event.key === "ArrowDown" && count) {
      event.preventDefault();
      if (this.list.hidden) this._suggest();
      else this._activate((this.active + 1) % count);
    } else if (event.key === "ArrowUp" && count) {
      event.preventDefault();
      this._activate((this.active - 1 + count) % count);
    } else if (event.key === "Enter") {
      event.preventDefault();
      const entry = this.matches[this.active];
      if (entry) this._pick(entry.symbol);
    } else if (event.key === "Escape") {
      this.input.value = "";
      this._close();
      this.input.blur();
    }
  }

  _pick(symbol) {
    this.input.value = "";
    this._close();
    this.onPick(symbol);
  }

  _close() {
    this.list.hidden = true;
    this.matches = [];
    this.active = -1;
    this.input.setAttribute("aria-expanded", "false");
    this.input.removeAttribute("aria-activedescendant");
  }
}
