/** Entry point: read the URL, load what the view needs, draw it; in-page links navigate in place. */

import { getJson, normLanguages, urls } from "./api.js";
import { h } from "./dom.js";
import { createLeaderboard } from "./leaderboard.js";
import { renderModel, renderTask } from "./pages.js";
import { createQueue, mountAccount, probeQueue } from "./queue.js";
import { href, leaderboardState, readState, withState } from "./state.js";
import {
  done,
  hasSnapshot,
  menuLeaves,
  renderMenu,
  setSnapshot,
  showError,
  showLoading,
  updateMenu,
} from "./ui.js";

const main = document.getElementById("main");
const menuEl = document.getElementById("menu");
const snapEl = document.getElementById("snapshot");
const siteNav = document.getElementById("site-nav");
const boardLink = document.getElementById("nav-board");
const queueLink = document.getElementById("nav-queue");
const accountEl = document.getElementById("account");

let state = readState();
let token = 0;
let board = null; // { key, ctx }: the leaderboard drawn last (kept for coming back)
let page = null; // { key, update, root }: the model or task page on screen
let menu = null; // Promise of the menu groups
let queue = null; // the queue view, made on its first visit and kept
let queueOn = null; // Promise: does this server have the write side (queue, votes)?
let account = null; // the header's sign-in control

/** User intents from the views: edit the state, record it in the URL, redraw. */
const on = {
  change(changes, { push = false } = {}) {
    const url = href(withState(state, changes));
    if (push) history.pushState(null, "", url);
    else history.replaceState(null, "", url);
    route();
  },
};

function refreshMenu() {
  const detail = state.view === "model" || state.view === "task" || state.view === "queue";
  updateMenu(menuEl, {
    current: detail ? "" : state.b,
    linkFor: (b) =>
      href(
        withState(leaderboardState(state), {
          view: state.view === "chart" ? "chart" : "",
          b,
          sort: "",
          dir: "",
          lang: "",
          y: "",
        }),
      ),
  });
}

/** The site links in the header: back to the leaderboard (its state kept) and the queue. */
function refreshSiteNav() {
  const onQueue = state.view === "queue";
  boardLink.setAttribute("href", href(leaderboardState(state)));
  queueLink.setAttribute("href", href(withState(leaderboardState(state), { view: "queue" })));
  if (onQueue) {
    queueLink.setAttribute("aria-current", "page");
    boardLink.removeAttribute("aria-current");
  } else {
    queueLink.removeAttribute("aria-current");
    boardLink.setAttribute("aria-current", "page");
  }
}

/** Ask once whether the server has the write side; when it does, show the queue link and sign-in. */
function loadQueueProbe() {
  if (!queueOn) {
    queueOn = probeQueue().then((on) => {
      if (on) {
        siteNav.hidden = false;
        accountEl.hidden = false;
        account = mountAccount(accountEl);
      }
      return on;
    });
  }
  return queueOn;
}

function loadMenu() {
  if (!menu) {
    showLoading(menuEl, "Loading benchmarks…");
    menu = getJson(urls.menu()).then(async ({ data }) => {
      if (menuLeaves(data).length) return data;
      const list = await getJson(urls.benchmarks());
      return [{ name: "Benchmarks", open: true, children: list.data }];
    });
    menu.then(
      (groups) => {
        renderMenu(menuEl, groups);
        refreshMenu();
      },
      (error) => {
        menu = null;
        showError(menuEl, { title: "Could not load the benchmark menu.", error, retry: loadMenu });
      },
    );
  }
  return menu;
}

function noteSnapshot(res, id) {
  setSnapshot(snapEl, { id, updated: res.lastModified });
  if (!hasSnapshot()) {
    getJson(urls.ready()).then(
      ({ data }) => setSnapshot(snapEl, { id: data.snapshot, updated: data.updatedAt }),
      () => {},
    );
  }
}

/** A benchmark's BenchmarkOut: from the menu when listed there, else its own route; null if neither. */
async function benchmarkInfo(name) {
  try {
    const found = menuLeaves(await loadMenu()).find((b) => b.name === name);
    if (found) return found;
  } catch {
    // The menu has its own error state; fall through to the benchmark's own route.
  }
  try {
    return (await getJson(urls.benchmark(name))).data;
  } catch {
    return null;
  }
}

async function showBoard(my, focus) {
  if (!state.b) {
    showLoading(main, "Loading benchmarks…");
    let groups;
    try {
      groups = await loadMenu();
    } catch (error) {
      if (my === token) {
        showError(main, { title: "Could not load the list of benchmarks.", error, retry: route });
      }
      return;
    }
    if (my !== token) return;
    const first = menuLeaves(groups)[0];
    if (!first) {
      done(main);
      main.innerHTML = '<p class="empty">This dataset has no benchmarks.</p>';
      return;
    }
    state = withState(state, { b: first.name });
    history.replaceState(null, "", href(state));
    refreshMenu();
  }
  const key = `${state.b}\n${normLanguages(state.lang)}`;
  if (board?.key !== key) {
    board = null;
    showLoading(main, `Loading ${state.b}…`);
    let scores;
    let detail;
    try {
      [scores, detail] = await Promise.all([
        getJson(urls.scores(state.b, state.lang)),
        benchmarkInfo(state.b),
      ]);
    } catch (error) {
      if (my === token) {
        const title = `Could not load the leaderboard “${state.b}”.`;
        showError(main, { title, error, retry: route });
      }
      return;
    }
    if (my !== token) return;
    noteSnapshot(scores, scores.data.snapshot);
    const ctx = createLeaderboard({ scores: scores.data, bench: detail, on });
    board = { key, ctx, title: detail?.displayName || scores.data.benchmarkName };
  }
  if (main.children.length !== 1 || main.firstElementChild !== board.ctx.root) {
    done(main);
    main.replaceChildren(board.ctx.root);
  }
  board.ctx.update(state);
  document.title = `${board.title} – Leaderboard`;
  if (focus) board.ctx.root.querySelector("h1").focus();
}

async function showPage(my, focus) {
  const kind = state.view;
  const name = state.name;
  const key = `${kind}\n${name}`;
  if (page?.key === key && main.contains(page.root)) {
    page.update(state);
    return;
  }
  page = null;
  if (!name) {
    done(main);
    main.innerHTML = `<p class="empty">No ${kind} name in the address.</p>`;
    return;
  }
  showLoading(main, `Loading ${kind} ${name}…`);
  let res;
  try {
    res = await getJson(kind === "model" ? urls.model(name) : urls.task(name));
  } catch (error) {
    if (my === token) showError(main, { title: `Could not load the ${kind} “${name}”.`, error, retry: route });
    return;
  }
  if (my !== token) return;
  done(main);
  const render = kind === "model" ? renderModel : renderTask;
  const update = render(main, { data: res.data, state, on });
  page = { key, update, root: main.querySelector("section.page") };
  noteSnapshot(res, "");
  document.title = `${name} – Leaderboard`;
  if (focus) main.querySelector("h1").focus();
}

async function showQueue(my, focus) {
  document.title = "Evaluation queue – Leaderboard";
  if (!queue || !main.contains(queue.root)) showLoading(main, "Loading the evaluation queue…");
  const available = await loadQueueProbe();
  if (my !== token) return;
  if (!available) {
    done(main);
    main.replaceChildren(
      h(
        "p",
        { class: "empty", id: "queue-off" },
        "The evaluation queue is not available on this server. ",
        h("a", { "data-nav": true, href: href(leaderboardState(state)) }, "Back to the leaderboard"),
      ),
    );
    return;
  }
  queue ??= createQueue({ on, signIn: () => account?.open() });
  const entering = !main.contains(queue.root);
  if (entering) {
    done(main);
    main.replaceChildren(queue.root);
  }
  queue.update(state);
  if (entering) queue.refresh();
  if (focus) queue.root.querySelector("h1").focus();
}

/** Draw the view the URL describes. */
function route({ focus = false } = {}) {
  state = readState();
  const my = ++token;
  refreshMenu();
  refreshSiteNav();
  if (state.view === "queue") return showQueue(my, focus);
  if (state.view === "model" || state.view === "task") return showPage(my, focus);
  return showBoard(my, focus);
}

document.addEventListener("click", (event) => {
  if (event.defaultPrevented || event.button !== 0) return;
  if (event.metaKey || event.ctrlKey || event.shiftKey || event.altKey) return;
  const a = event.target.closest?.("a[data-nav]");
  if (!a) return;
  const url = new URL(a.getAttribute("href"), window.location.href);
  const here = window.location;
  if (url.origin !== here.origin || url.pathname !== here.pathname || url.search !== here.search) {
    return;
  }
  event.preventDefault();
  history.pushState(null, "", url.href);
  route({ focus: !a.closest(".tabs") });
});
// Back and forward (popstate) and a fragment edited by hand (hashchange).
window.addEventListener("popstate", () => route());
window.addEventListener("hashchange", () => route());

loadMenu().catch(() => {});
loadQueueProbe();
route();
