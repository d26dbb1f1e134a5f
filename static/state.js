/**
 * The view state kept in the URL fragment (#b=...&sort=...), so a link reproduces exactly what
 * is on screen. The fragment never reaches the server: the page is one cacheable file, and a
 * static export needs no rewriting.
 */

/**
 * Keys, in the order they appear in URLs.
 * view: "" (table) | chart | model | task | queue; b: benchmark; name: model or task of a detail view;
 * sort/dir: table sort; q: model name filter; open: yes|no; pmin/pmax: parameters (billions);
 * type: model type; lang: languages sent to the API; tasks: 1 shows per-task columns;
 * y: chart metric; psort/pdir: sort of the model or task page's table; qs: the queue view's
 * status tab (pending when empty).
 */
export const KEYS = [
  "view",
  "name",
  "b",
  "lang",
  "sort",
  "dir",
  "q",
  "open",
  "pmin",
  "pmax",
  "type",
  "tasks",
  "y",
  "psort",
  "pdir",
  "qs",
];

/** The state in a URL fragment; every key present, "" when absent. */
export function readState(fragment = window.location.hash) {
  const params = new URLSearchParams(fragment.replace(/^#/, ""));
  const state = {};
  for (const key of KEYS) state[key] = params.get(key) ?? "";
  return state;
}

// Query values keep , / : ( ) readable; everything else is percent-encoded.
function encodeValue(value) {
  return encodeURIComponent(value)
    .replace(/%2C/g, ",")
    .replace(/%2F/g, "/")
    .replace(/%3A/g, ":")
    .replace(/%20/g, "+");
}

/** A state as a link target: a fragment (just "#" when the state is empty). */
export function href(state) {
  const parts = [];
  for (const key of KEYS) {
    const value = state[key];
    if (value !== undefined && value !== null && value !== "") {
      parts.push(`${key}=${encodeValue(String(value))}`);
    }
  }
  return `#${parts.join("&")}`;
}

/** A copy of ``state`` with ``changes`` applied (undefined deletes a key). */
export function withState(state, changes) {
  const next = { ...state };
  for (const [key, value] of Object.entries(changes)) next[key] = value ?? "";
  return next;
}

/** The leaderboard a detail page returns to: the same state without the detail view. */
export function leaderboardState(state) {
  return withState(state, { view: "", name: "", psort: "", pdir: "", qs: "" });
}

/** A model page link that remembers the leaderboard state for its back link. */
export function modelState(state, name) {
  return withState(state, { view: "model", name, psort: "", pdir: "" });
}

/** A task page link that remembers the leaderboard state for its back link. */
export function taskState(state, name) {
  return withState(state, { view: "task", name, psort: "", pdir: "" });
}
