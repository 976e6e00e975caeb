// The access token, for a server started with auth.tokens. Open the page once as ?token=...: the
// token moves to this tab's sessionStorage and out of the address bar (so a shared link or a
// screenshot does not carry it), and every stream and API request sends it as ?token=...
// (a browser's WebSocket and EventSource cannot set an Authorization header).

const KEY = "ticker.token";

function takeTokenFromAddress() {
  const params = new URLSearchParams(location.search);
  const token = params.get("token");
  if (token === null) return;
  try {
    sessionStorage.setItem(KEY, token);
  } catch {
    return; // storage disabled: leave it in the address, where it still works
  }
  params.delete("token");
  const query = params.toString();
  history.replaceState(null, "", (query ? `?${query}` : location.pathname) + location.hash);
}

takeTokenFromAddress();

export function accessToken() {
  try {
    return sessionStorage.getItem(KEY) ?? new URLSearchParams(location.search).get("token");
  } catch {
    return new URLSearchParams(location.search).get("token");
  }
}

// `path` (relative, may have a query) with the token added when there is one.
export function withToken(path) {
  const token = accessToken();
  if (!token) return path;
  return `${path}${path.includes("?") ? "&" : "?"}token=${encodeURIComponent(token)}`;
}
