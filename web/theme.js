// Light and dark: follows the system until the user picks one, which is then remembered.
// Charts take their colours from the same CSS variables as the page (see colors()).

const KEY = "ticker.theme";
const system = matchMedia("(prefers-color-scheme: dark)");

function saved() {
  try {
    return localStorage.getItem(KEY);
  } catch {
    return null;
  }
}

export function currentTheme() {
  return document.documentElement.dataset.theme === "dark" ? "dark" : "light";
}

export function initTheme(button, onChange) {
  const apply = (theme) => {
    document.documentElement.dataset.theme = theme;
    button.setAttribute("aria-pressed", String(theme === "dark"));
    button.title = theme === "dark" ? "Switch to the light theme" : "Switch to the dark theme";
    onChange(theme);
  };
  button.addEventListener("click", () => {
    const next = currentTheme() === "dark" ? "light" : "dark";
    try {
      localStorage.setItem(KEY, next);
    } catch { /* storage disabled: the choice lasts for this page */ }
    apply(next);
  });
  system.addEventListener("change", (event) => {
    if (!saved()) apply(event.matches ? "dark" : "light");
  });
  button.setAttribute("aria-pressed", String(currentTheme() === "dark"));
}

// The palette plotly needs, read from the CSS custom properties of the current theme.
export function colors() {
  const style = getComputedStyle(document.documentElement);
  const get = (name) => style.getPropertyValue(name).trim();
  return {
    fg: get("--fg"), muted: get("--muted"), grid: get("--grid"), border: get("--border"),
    panel: get("--panel"), accent: get("--accent"), up: get("--up"), down: get("--down"),
    upVolume: get("--up-volume"), downVolume: get("--down-volume"), tagText: get("--tag-text"),
    replay: get("--replay"),
    font: get("--font"),
  };
}
