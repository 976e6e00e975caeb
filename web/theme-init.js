// Runs before the first paint (a classic, blocking script) so that a dark-mode user never sees a
// white flash: the saved choice if any, else the system's. web/theme.js does the rest.
(() => {
  let saved = null;
  try { saved = localStorage.getItem("ticker.theme"); } catch { /* storage disabled */ }
  const dark = saved ? saved === "dark" : matchMedia("(prefers-color-scheme: dark)").matches;
  document.documentElement.dataset.theme = dark ? "dark" : "light";
})();
