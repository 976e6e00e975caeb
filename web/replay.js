// Replay mode: a recording played through /ws/replay instead of the live market, with the controls
// of a player (play/pause, speed, a seek slider over the recording's time span) and a violet band
// with a "REPLAY x10" badge that no one can take for the live market.
//
// The state lives in the URL (?replay=NAME&speed=10&at=<ms>&symbols=...) so that a link
// reproduces it; `at` is where the viewer last jumped to. /ws/replay speaks protocol v1 plus four
// ops, each answered by a "replay" state message; a seek starts a new run (a new hello, reset
// snapshots), and the end of the recording sends "replay_end" (a seek then plays again).

import { fetchRecordings } from "./api.js";
import { fmtClock, fmtDateTime } from "./format.js";

export const SPEEDS = ["1", "2", "10", "60", "max"];
const DEFAULT_SPEED = "10";
const MAX_SPEED = 100_000;

// "max" or a positive factor, as the server's parse_speed takes it; anything else: the default.
export function parseSpeed(raw) {
  if (raw === "max") return "max";
  const value = Number(raw);
  return Number.isFinite(value) && value > 0 && value <= MAX_SPEED ? String(value) : DEFAULT_SPEED;
}

export function speedLabel(speed) {
  return speed === "max" ? "MAX" : `x${speed}`;
}

// {name, speed, at} from the page's query, or null in live mode.
export function readReplayParams(params) {
  const name = params.get("replay");
  if (!name) return null;
  const at = Number(params.get("at"));
  return { name, speed: parseSpeed(params.get("speed")), at: at > 0 ? at : null };
}

export class ReplayControls {
  // send(command) -> bool: to the replay socket; position() -> recorded ms of the newest tick
  // taken (0 when none in this run); onChange(): the URL should be written again; onState(): the
  // status bar should say playing / paused / ended now, not at its next redraw.
  constructor(root, { name, speed, at, send, position, onChange, onState, onSwitch, onLive }) {
    this.name = name;
    this.speed = speed;
    this.at = at; // where to start (a link), or where to go back to after a reconnect
    this.send = send;
    this.newest = position;
    this.onChange = onChange;
    this.onState = onState;
    this.paused = false;
    this.ended = false;
    this.recording = null; // this recording's entry in /api/recordings
    this.missing = false;
    this._position = at; // the seek target, until the run's first ticks arrive
    this._connections = 0;
    this._dragging = false;
    this.el = {
      badge: root.querySelector(".replay-speed"),
      select: root.querySelector(".replay-select"),
      play: root.querySelector(".replay-play"),
      playLabel: root.querySelector(".replay-play .label"),
      speeds: root.querySelector(".speeds"),
      slider: root.querySelector(".replay-slider"),
      start: root.querySelector(".replay-start"),
      end: root.querySelector(".replay-end"),
      pos: root.querySelector(".replay-pos"),
      note: root.querySelector(".replay-note"),
    };
    root.hidden = false;
    this.el.play.addEventListener("click", () => this.togglePlay());
    this.el.speeds.addEventListener("click", (event) => {
      const button = event.target.closest("button");
      if (button) this.setSpeed(button.dataset.speed);
    });
    this.el.select.addEventListener("change", () => onSwitch(this.el.select.value));
    root.querySelector(".replay-live").addEventListener("click", onLive);
    const slider = this.el.slider;
    slider.addEventListener("pointerdown", () => { this._dragging = true; });
    slider.addEventListener("input", () => {
      this._dragging = true; // keys and drags: show where it would go
      this.el.pos.textContent = fmtDateTime(Number(slider.value));
    });
    slider.addEventListener("change", () => {
      this._dragging = false;
      this.seek(Number(slider.value));
    });
    setInterval(() => this.render(), 250);
  }

  // The socket's path for the next connection: the current speed, not the one of the link.
  socketPath() {
    return `ws/replay?recording=${encodeURIComponent(this.name)}&speed=${this.speed}`;
  }

  // Query parameters of this mode, in the order a reader expects them.
  urlParams() {
    return `replay=${encodeURIComponent(this.name)}&speed=${this.speed}`
      + (this.at ? `&at=${Math.round(this.at)}` : "");
  }

  // The recordings, for the picker and the slider's range; false if this one is not among them.
  async load() {
    let list;
    try {
      list = await fetchRecordings();
    } catch {
      return true; // the server is away: the connection retries, the picker stays empty
    }
    const select = this.el.select;
    select.textContent = "";
    for (const entry of list) {
      const option = new Option(entry.name, entry.name);
      option.title = `${fmtDateTime(entry.first_ts)} \u00B7 ${entry.symbols.join(", ")} \u00B7 `
        + `${entry.tick_count.toLocaleString("en-US")} trades`;
      select.append(option);
    }
    this.recording = list.find((entry) => entry.name === this.name) ?? null;
    if (!this.recording) {
      this.missing = true;
      select.prepend(new Option(this.name, this.name));
      this.el.note.textContent = `No recording named \u201C${this.name}\u201D`;
    }
    select.value = this.name;
    const { first_ts: first, last_ts: last } = this.recording ?? {};
    if (Number.isFinite(first) && Number.isFinite(last)) {
      Object.assign(this.el.slider, { min: Math.floor(first), max: Math.ceil(last), step: 100 });
      this.el.slider.disabled = false;
      this.el.start.textContent = fmtClock(first);
      this.el.end.textContent = fmtClock(last);
      this.el.slider.title = `${fmtDateTime(first)} \u2013 ${fmtDateTime(last)}`;
    }
    this.render();
    return !this.missing;
  }

  // A new connection said hello: a fresh replay from the start. Go where the link pointed, or
  // back to where the last connection was, paused if it was.
  connected() {
    this._connections += 1;
    const at = this._connections === 1 ? this.at : this.position();
    if (at) this.send({ op: "seek", ts: at });
    if (this.paused) this.send({ op: "pause" });
  }

  message(message) {
    if (message.type === "replay") {
      this.paused = message.paused;
      if (message.speed !== undefined) this.speed = parseSpeed(String(message.speed));
      if (!message.ended) this.ended = false; // a seek after the end answers ended: true
      if (message.position !== null && message.position !== undefined && !this.newest()) {
        this._position = message.position;
      }
    } else if (message.type === "replay_end") {
      this.ended = true;
      if (message.position !== null && message.position !== undefined) {
        this._position = message.position;
      }
    } else if (message.type === "hello") {
      this.ended = false; // a new run: a seek began it
    } else {
      return;
    }
    this._update();
  }

  position() {
    return this.newest() || this._position || null;
  }

  togglePlay() {
    if (this.ended) {
      // Play it again from the start (a seek after the end plays from there).
      if (this.paused) this.send({ op: "resume" });
      this.paused = false;
      this.seek(this.recording?.first_ts ?? 0);
      return;
    }
    this.paused = !this.paused;
    this.send({ op: this.paused ? "pause" : "resume" });
    this._update();
  }

  setSpeed(speed) {
    this.speed = parseSpeed(speed);
    this.send({ op: "speed", speed: this.speed === "max" ? "max" : Number(this.speed) });
    this.onChange();
    this._update();
  }

  seek(ts) {
    this.at = ts;
    this._position = ts;
    this.ended = false;
    this.send({ op: "seek", ts });
    this.onChange();
    this._update();
  }

  _update() {
    this.render();
    this.onState();
  }

  // Pill text in the status bar.
  label() {
    if (this.ended) return "ended";
    return this.paused ? "paused" : "playing";
  }

  render() {
    const el = this.el;
    el.badge.textContent = speedLabel(this.speed);
    document.body.dataset.replay = this.ended ? "ended" : this.paused ? "paused" : "playing";
    el.play.setAttribute("aria-label", this.ended ? "Replay from the start"
      : this.paused ? "Play" : "Pause");
    el.playLabel.textContent = this.ended ? "Replay" : this.paused ? "Play" : "Pause";
    for (const button of el.speeds.querySelectorAll("button")) {
      button.setAttribute("aria-pressed", String(button.dataset.speed === this.speed));
    }
    const position = this.position();
    if (!this._dragging) {
      el.pos.textContent = fmtDateTime(position);
      if (position !== null && !el.slider.disabled) el.slider.value = String(position);
    }
    if (!this.missing) {
      el.note.textContent = this.ended ? "End of recording \u00B7 drag the slider or press Replay"
        : "";
    }
  }

  debug() {
    return { name: this.name, speed: this.speed, paused: this.paused, ended: this.ended,
             position: this.position(), first: this.recording?.first_ts ?? null,
             last: this.recording?.last_ts ?? null, missing: this.missing };
  }
}
