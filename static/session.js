/**
 * The signed-in session: an API key pasted once, kept in this tab's sessionStorage (never
 * localStorage, never a URL, cookie or form field the browser submits), and the name the API
 * says it acts under, learned from the first write it answers.  Closing the tab or signing out
 * forgets both.
 */

const KEY = "leaderboard.apiKey";
const USER = "leaderboard.user";
const listeners = new Set();

function storage() {
  try {
    return window.sessionStorage;
  } catch {
    return null; // storage disabled by the browser: signing in is not possible
  }
}

function read(name) {
  try {
    return storage()?.getItem(name) ?? "";
  } catch {
    return "";
  }
}

function notify() {
  for (const fn of [...listeners]) fn();
}

/** True when this browser lets the page keep a key for the tab's session. */
export function canSignIn() {
  const s = storage();
  if (!s) return false;
  try {
    s.setItem("leaderboard.probe", "1");
    s.removeItem("leaderboard.probe");
    return true;
  } catch {
    return false;
  }
}

/** The API key of this tab's session ("" when signed out). */
export function apiKey() {
  return read(KEY);
}

/** The identity the key acts under, once an answer of the API named it ("" until then). */
export function userName() {
  return apiKey() ? read(USER) : "";
}

/** True when a key is kept. */
export function signedIn() {
  return Boolean(apiKey());
}

/** Keep ``key`` for this tab's session; throws when the browser refuses storage. */
export function signIn(key) {
  const s = storage();
  if (!s) throw new Error("this browser does not let the page use session storage");
  s.setItem(KEY, key);
  s.removeItem(USER);
  notify();
}

/** Forget the key and the name. */
export function signOut() {
  const s = storage();
  try {
    s?.removeItem(KEY);
    s?.removeItem(USER);
  } catch {
    // nothing was kept
  }
  notify();
}

/** Remember the name an answer gave for the signed-in identity (a vote's user, a submitter). */
export function learnUser(name) {
  if (!name || !signedIn() || name === read(USER)) return;
  try {
    storage()?.setItem(USER, name);
  } catch {
    return;
  }
  notify();
}

/** The request headers that carry the key ({} when signed out). */
export function authHeaders() {
  const key = apiKey();
  return key ? { authorization: `Bearer ${key}` } : {};
}

/** Call ``fn`` after every sign-in, sign-out and learned name; returns the unsubscribe. */
export function onSessionChange(fn) {
  listeners.add(fn);
  return () => listeners.delete(fn);
}
