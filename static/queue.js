/**
 * The write side on the page: the evaluation queue by status (with every model's votes), voting,
 * the submit form and the sign-in control.  Everything is built with DOM nodes (dom.js), never
 * from HTML strings: model names, submitters and error details are text, whatever they contain.
 *
 * Reads are anonymous (the queue is public); writes carry the session's API key
 * (session.js) as ``Authorization: Bearer``.
 */

import { ApiError, pathName } from "./api.js";
import { field, h } from "./dom.js";
import { fmtDate } from "./format.js";
import {
  authHeaders,
  canSignIn,
  learnUser,
  onSessionChange,
  signIn,
  signOut,
  signedIn,
  userName,
} from "./session.js";
import { href, leaderboardState, modelState, withState } from "./state.js";

/** The statuses of a submission, in tab order, with what their tab shows. */
export const STATUSES = [
  {
    key: "pending",
    label: "Pending",
    order: "in the order evaluators take them: most up-votes first, then oldest",
    empty: "Nothing is waiting for evaluation.",
  },
  {
    key: "running",
    label: "Running",
    order: "oldest first",
    detail: "Claimed by",
    empty: "Nothing is being evaluated now.",
  },
  {
    key: "finished",
    label: "Finished",
    order: "most recently finished first",
    detail: "Dataset version",
    empty: "No evaluation has finished yet.",
  },
  {
    key: "failed",
    label: "Failed",
    order: "most recently failed first",
    detail: "Reason",
    empty: "No evaluation has failed.",
  },
];
const BY_KEY = new Map(STATUSES.map((s) => [s.key, s]));

export const queueUrls = {
  submissions: () => "v1/submissions",
  votes: (model) => `v1/models/${pathName(model)}/votes`,
  userVotes: (user) => `v1/votes?user=${encodeURIComponent(user)}`,
};

// --- requests ---------------------------------------------------------------------------------

async function problemError(res, url) {
  let body = null;
  try {
    body = await res.json();
  } catch {
    // not problem+json: the status line says it all
  }
  const title = typeof body?.title === "string" && body.title ? body.title : res.statusText || "Error";
  const detail = typeof body?.detail === "string" ? body.detail : "";
  const error = new ApiError(detail ? `${title}: ${detail}` : title, { status: res.status, url });
  error.title = title;
  error.detail = detail;
  error.retryAfter = res.headers.get("retry-after") ?? "";
  error.existingId = Number.isInteger(body?.existingId) ? body.existingId : null;
  return error;
}

/**
 * One request to the write side's routes.  Reads revalidate (the answers are ``no-cache`` with
 * ETags); ``auth`` adds the session's key.  Resolves to the JSON body (null for 204); rejects
 * with an ApiError carrying the problem's ``title``, ``detail`` and ``status``.
 */
async function call(method, url, { body, auth = false } = {}) {
  const headers = { accept: "application/json, application/problem+json" };
  if (auth) Object.assign(headers, authHeaders());
  const init = { method, headers, cache: "no-cache", credentials: "same-origin" };
  if (body !== undefined) {
    headers["content-type"] = "application/json";
    init.body = JSON.stringify(body);
  }
  let res;
  try {
    res = await fetch(url, init);
  } catch (err) {
    throw new ApiError(`Network error: ${err.message}`, { url });
  }
  if (!res.ok) throw await problemError(res, url);
  if (res.status === 204) return null;
  try {
    return await res.json();
  } catch {
    throw new ApiError("The response was not valid JSON", { status: res.status, url });
  }
}

/** True when the queue is off: no state store (503) or no such route (404, a static export). */
function isOff(error) {
  return error?.status === 503 || error?.status === 404;
}

/**
 * Whether this server has the write side.  ``/ready`` names its state store (``stateStore``:
 * null when off), which avoids a failing request on servers without one; when ``/ready`` does
 * not answer in JSON (a static export, a proxy), the submissions list itself is asked.
 */
export async function probeQueue() {
  try {
    const res = await fetch("ready", { headers: { accept: "application/json" }, cache: "no-store" });
    const body = await res.json();
    if (body && typeof body === "object" && "stateStore" in body) return body.stateStore !== null;
  } catch {
    // fall through to the list
  }
  try {
    await call("GET", queueUrls.submissions());
    return true;
  } catch {
    return false;
  }
}

// --- shared pieces ----------------------------------------------------------------------------

/** A problem+json failure as an alert: its title (and status), its detail, a hint. */
function errorBox(heading, error, { hint = "", retry = null } = {}) {
  const status = error?.status ? ` (HTTP ${error.status})` : "";
  const title = error?.title ? `${error.title}${status}` : error?.message || String(error);
  const lines = [];
  if (error?.detail) lines.push(error.detail);
  if (error?.status === 429 && error.retryAfter) {
    lines.push(`Try again in ${error.retryAfter} seconds.`);
  }
  if (error?.existingId) lines.push(`The existing one is submission #${error.existingId}.`);
  return h(
    "div",
    { class: "error", role: "alert" },
    h("p", { class: "error-title", text: heading }),
    h("p", { class: "error-problem", text: title }),
    lines.map((text) => h("p", { class: "error-detail", text })),
    hint ? h("p", { class: "error-hint", text: hint }) : null,
    retry ? h("p", {}, h("button", { type: "button", class: "retry", onclick: retry }, "Retry")) : null,
  );
}

function authHint(error) {
  if (error?.status === 401) return "Check the API key: sign out and sign in again with a valid one.";
  if (error?.status === 403) return "This API key lacks the scope this needs.";
  return "";
}

// --- the sign-in control ----------------------------------------------------------------------

const PRINTABLE = /^[\x21-\x7e]+$/;

/**
 * The header's sign-in control in ``el``: "Sign in" opens a form where an API key is pasted
 * once; signed in, it names the identity (once known) and offers "Sign out".  Returns
 * ``{ open() }`` so other parts of the page can start a sign-in.
 */
export function mountAccount(el) {
  let open = false;
  let message = "";

  const focus = (selector) => el.querySelector(selector)?.focus();

  const close = () => {
    open = false;
    message = "";
    draw();
    focus("#signin-open");
  };

  const submit = (event) => {
    event.preventDefault();
    const input = el.querySelector("#signin-key");
    const key = input.value.trim();
    input.value = "";
    if (!PRINTABLE.test(key)) {
      message = key ? "An API key has no spaces or special characters." : "Paste an API key.";
      draw();
      focus("#signin-key");
      return;
    }
    try {
      open = false;
      message = "";
      signIn(key); // redraws through the session listener
      focus("#signout");
    } catch (error) {
      open = true;
      message = `Could not sign in: ${error.message}`;
      draw();
    }
  };

  function draw() {
    if (signedIn()) {
      const who = userName();
      el.replaceChildren(
        h(
          "span",
          { id: "account-status", class: "who" },
          who ? ["Signed in as ", h("strong", { id: "account-name", text: who })] : "Signed in with an API key",
        ),
        h(
          "button",
          {
            type: "button",
            id: "signout",
            onclick: () => {
              signOut();
              focus("#signin-open");
            },
          },
          "Sign out",
        ),
      );
      return;
    }
    if (!canSignIn()) {
      el.replaceChildren(h("span", { class: "who", text: "Signing in needs session storage." }));
      return;
    }
    if (!open) {
      el.replaceChildren(
        h(
          "button",
          {
            type: "button",
            id: "signin-open",
            onclick: () => {
              open = true;
              draw();
              focus("#signin-key");
            },
          },
          "Sign in",
        ),
      );
      return;
    }
    // No name attributes: even a form submitted without this script sends no key anywhere.
    const input = h("input", {
      id: "signin-key",
      type: "password",
      autocomplete: "off",
      spellcheck: "false",
      required: true,
      "aria-describedby": "signin-hint",
      "aria-invalid": message ? "true" : null,
    });
    const form = h(
      "form",
      {
        id: "signin-form",
        class: "signin",
        "aria-label": "Sign in with an API key",
        onsubmit: submit,
        onkeydown: (event) => {
          if (event.key === "Escape") close();
        },
      },
      h("label", { for: "signin-key", text: "API key" }),
      input,
      h("button", { type: "submit" }, "Sign in"),
      h("button", { type: "button", onclick: close }, "Cancel"),
      h("p", {
        id: "signin-hint",
        class: "hint",
        text: "Kept in this tab's session storage until you sign out or close the tab.",
      }),
      message ? h("p", { class: "inline-error", role: "alert", text: message }) : null,
    );
    el.replaceChildren(form);
  }

  onSessionChange(draw);
  draw();
  return {
    open() {
      if (signedIn()) return;
      open = true;
      draw();
      focus("#signin-key");
    },
  };
}

// --- the submit form --------------------------------------------------------------------------

const SUGGESTIONS = {
  precision: ["float16", "bfloat16", "float32", "8bit", "4bit", "GPTQ"],
  modelType: ["pretrained", "fine-tuned", "chat", "merge", "multimodal"],
  weightType: ["Original", "Delta", "Adapter"],
};

/** The submit form's fields: body key, label, input attributes, hint. */
const FIELDS = [
  ["model", "Model", { id: "s-model", required: true, maxlength: 300, placeholder: "org/model" }, ""],
  ["revision", "Revision", { id: "s-revision", maxlength: 100, placeholder: "main" }, "Default: main."],
  ["precision", "Precision", { id: "s-precision", maxlength: 32, placeholder: "float16" }, "Default: float16."],
  ["modelType", "Model type", { id: "s-type", maxlength: 64 }, ""],
  ["baseModel", "Base model", { id: "s-base", maxlength: 300, placeholder: "org/base-model" }, "For delta or adapter weights."],
  ["weightType", "Weight type", { id: "s-weight", maxlength: 32, placeholder: "Original" }, ""],
];

function submitForm(onSubmit) {
  const inputs = {};
  const lists = [];
  const fields = FIELDS.map(([key, label, attrs, hint]) => {
    const list = SUGGESTIONS[key] ? `${attrs.id}-list` : null;
    if (list) lists.push(h("datalist", { id: list }, SUGGESTIONS[key].map((value) => h("option", { value }))));
    inputs[key] = h("input", { type: "text", autocomplete: "off", spellcheck: "false", list, ...attrs });
    return field(label, inputs[key], { hint });
  });
  const button = h("button", { type: "submit", id: "s-submit", class: "primary" }, "Submit for evaluation");
  const result = h("div", { id: "submit-result" });
  const form = h(
    "form",
    { id: "submit-form", class: "submit-form", "aria-labelledby": "submit-title" },
    h("div", { class: "submit-fields" }, fields),
    lists,
    h("p", { class: "submit-actions" }, button),
  );
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    if (!form.reportValidity()) return;
    const body = {};
    for (const [key] of FIELDS) {
      const value = inputs[key].value.trim();
      if (value) body[key] = value;
    }
    if (!body.model) {
      inputs.model.focus();
      return;
    }
    button.disabled = true;
    result.replaceChildren(h("p", { class: "loading", role: "status" }, "Submitting…"));
    try {
      const created = await onSubmit(body);
      form.reset();
      result.replaceChildren(successBox(created));
    } catch (error) {
      result.replaceChildren(errorBox("The submission was not accepted.", error, { hint: authHint(error) }));
    } finally {
      button.disabled = false;
    }
  });
  return {
    root: h(
      "section",
      { class: "submit", "aria-labelledby": "submit-title" },
      h("h2", { id: "submit-title", text: "Submit a model" }),
      form,
      result,
    ),
    clear() {
      form.reset();
      result.replaceChildren();
    },
  };
}

function successBox(created) {
  const facts = [
    ["Submission", `#${created.id}`],
    ["Model", created.model],
    ["Revision", created.revision],
    ["Precision", created.precision],
    ["Model type", created.modelType ?? ""],
    ["Base model", created.baseModel ?? ""],
    ["Weight type", created.weightType ?? ""],
    ["Status", created.status],
    ["Submitter", created.submitter],
  ].filter(([, value]) => value);
  return h(
    "div",
    { class: "success", role: "status", id: "submit-success", dataset: { id: String(created.id) } },
    h("p", { class: "success-title", text: `Submitted: ${created.model} is ${created.status}.` }),
    h(
      "dl",
      { class: "meta" },
      facts.map(([k, v]) => h("div", {}, h("dt", { text: k }), h("dd", { text: v }))),
    ),
  );
}

// --- the queue view ---------------------------------------------------------------------------

function ordered(rows, status, counts) {
  const time = (value) => Date.parse(value) || 0;
  const copy = [...rows];
  if (status === "pending") {
    const up = (s) => counts.get(s.model)?.up ?? 0;
    copy.sort((a, b) => up(b) - up(a) || time(a.createdAt) - time(b.createdAt) || a.id - b.id);
  } else if (status === "running") {
    copy.sort((a, b) => time(a.createdAt) - time(b.createdAt) || a.id - b.id);
  } else {
    copy.sort((a, b) => time(b.updatedAt) - time(a.updatedAt) || b.id - a.id);
  }
  return copy;
}

function timeCell(value) {
  return h("td", {}, h("time", { datetime: value, title: value }, fmtDate(value)));
}

/**
 * The queue view: a heading, the submit form (signed in) or a sign-in prompt, tabs per status
 * with their counts, and a table of the chosen status.  ``on.change`` edits the URL state
 * (``qs``: the tab); ``signIn`` opens the header's sign-in control.  Returns
 * ``{ root, update(state), refresh() }``: update draws a new state, refresh asks the API again.
 */
export function createQueue({ on, signIn: startSignIn }) {
  let state = null;
  let submissions = null; // the list, once loaded
  let failure = null; // the error of the last load
  let counts = new Map(); // model -> {total, up, down} | null (could not be read)
  let mine = new Map(); // model -> "up" | "down": the signed-in identity's votes
  let freshId = 0; // the submission just made, highlighted
  let loads = 0;
  let lastUser = userName();

  const title = h("h1", { id: "page-title", tabindex: "-1", text: "Evaluation queue" });
  const intro = h("p", {
    class: "sub",
    text: "Models submitted for evaluation, by status, with their votes. Evaluators take the pending model with the most up-votes first.",
  });
  const form = submitForm(async (body) => {
    const created = await call("POST", queueUrls.submissions(), { body, auth: true });
    learnUser(created.submitter);
    freshId = created.id;
    announce(`Submission #${created.id} (${created.model}) is ${created.status}.`);
    if (currentStatus() !== created.status) on.change({ qs: created.status === "pending" ? "" : created.status });
    await refresh();
    return created;
  });
  const submitBox = h("div", { id: "queue-submit" });
  const tabs = h("nav", { class: "tabs", id: "queue-tabs", "aria-label": "Submissions by status" });
  const refreshButton = h("button", { type: "button", id: "queue-refresh", onclick: () => refresh() }, "Refresh");
  const live = h("p", { class: "status", id: "queue-status", role: "status" });
  const message = h("div", { id: "queue-message" });
  const body = h("div", { id: "queue-body" });
  const root = h(
    "section",
    { class: "page queue", id: "queue", "aria-labelledby": "page-title" },
    h("header", { class: "queue-head" }, title, intro),
    submitBox,
    h("div", { class: "queue-bar" }, tabs, refreshButton),
    live,
    message,
    body,
  );

  function announce(text) {
    live.textContent = text;
  }

  function currentStatus() {
    return BY_KEY.has(state?.qs) ? state.qs : "pending";
  }

  function drawSubmit() {
    if (signedIn()) {
      if (submitBox.firstElementChild !== form.root) submitBox.replaceChildren(form.root);
      return;
    }
    form.clear();
    submitBox.replaceChildren(
      h(
        "p",
        { class: "note", id: "queue-signin-note" },
        "Sign in with an API key to submit models and vote. ",
        h("button", { type: "button", class: "link", onclick: () => startSignIn?.() }, "Sign in"),
      ),
    );
  }

  function drawTabs() {
    const current = currentStatus();
    tabs.replaceChildren(
      ...STATUSES.map((s) => {
        const n = submissions ? submissions.filter((x) => x.status === s.key).length : null;
        return h(
          "a",
          {
            id: `qtab-${s.key}`,
            "data-nav": true,
            href: href(withState(state, { qs: s.key === "pending" ? "" : s.key })),
            "aria-current": s.key === current ? "page" : null,
            dataset: { status: s.key },
          },
          s.label,
          n === null ? null : h("span", { class: "count", text: ` (${n})` }),
        );
      }),
    );
  }

  function voteCell(s) {
    const own = mine.get(s.model);
    return h(
      "td",
      { class: "vote" },
      ["up", "down"].map((dir) => {
        const word = dir === "up" ? "Up" : "Down";
        const pressed = own === dir;
        return h(
          "button",
          {
            type: "button",
            class: `vote ${dir}`,
            dataset: { model: s.model, vote: dir },
            "aria-pressed": String(pressed),
            "aria-label": `${word}-vote ${s.model}`,
            title: pressed ? "Your vote: press again to withdraw it" : `${word}-vote this model`,
            onclick: () => vote(s.model, dir),
          },
          h("span", { "aria-hidden": "true", text: dir === "up" ? "▲" : "▼" }),
          ` ${word}`,
        );
      }),
    );
  }

  function row(s, info, signed) {
    const c = counts.get(s.model);
    const num = (key) => h("td", { class: `num ${key}`, text: c ? String(c[key]) : "–" });
    const model =
      s.status === "finished"
        ? h("a", { "data-nav": true, href: href(modelState(leaderboardState(state), s.model)) }, s.model)
        : s.model;
    const type = [s.modelType, s.weightType].filter(Boolean).join(" · ");
    const detail =
      s.status === "running"
        ? s.claimedBy
        : s.status === "finished"
          ? s.datasetVersion
          : s.status === "failed"
            ? s.reason
            : null;
    return h(
      "tr",
      {
        class: s.id === freshId ? "fresh" : null,
        dataset: { id: String(s.id), model: s.model, status: s.status },
      },
      h("th", { scope: "row", class: "model" }, model),
      h("td", { class: "revision" }, h("code", { text: s.revision })),
      h("td", { class: "precision", text: s.precision }),
      h(
        "td",
        { class: "type" },
        type,
        s.baseModel ? h("span", { class: "of base" }, `base: ${s.baseModel}`) : null,
      ),
      num("up"),
      num("down"),
      num("total"),
      signed ? voteCell(s) : null,
      h("td", { class: "submitter", text: s.submitter }),
      timeCell(s.createdAt),
      h(
        "td",
        { class: "status" },
        h("span", { class: `badge st-${s.status}`, title: `since ${fmtDate(s.updatedAt)}`, text: s.status }),
      ),
      info.detail ? h("td", { class: "detail", text: detail ?? "" }) : null,
    );
  }

  function table(rows, status) {
    const info = BY_KEY.get(status);
    const signed = signedIn();
    const heads = [
      ["Model", "model"],
      ["Revision"],
      ["Precision"],
      ["Type"],
      ["Up", "num", "up-votes"],
      ["Down", "num", "down-votes"],
      ["Total", "num", "all votes"],
      ...(signed ? [["Your vote"]] : []),
      ["Submitter"],
      ["Submitted"],
      ["Status"],
      ...(info.detail ? [[info.detail]] : []),
    ];
    const caption = `${info.label}: ${rows.length} submission${rows.length === 1 ? "" : "s"}, ${info.order}.`;
    return h(
      "div",
      { class: "table-wrap", tabindex: "0", role: "region", "aria-label": `${info.label} submissions` },
      h(
        "table",
        { id: "queue-table", class: "scores queue-table", dataset: { status } },
        h("caption", { text: caption }),
        h(
          "thead",
          {},
          h(
            "tr",
            {},
            heads.map(([text, cls, title]) => h("th", { scope: "col", class: cls, title, text })),
          ),
        ),
        h(
          "tbody",
          {},
          rows.length
            ? rows.map((s) => row(s, info, signed))
            : h("tr", {}, h("td", { class: "empty", colspan: String(heads.length), text: info.empty })),
        ),
      ),
    );
  }

  function draw() {
    if (!state) return;
    drawTabs();
    if (failure && isOff(failure)) {
      submitBox.replaceChildren();
      tabs.hidden = true;
      refreshButton.hidden = true;
      body.replaceChildren(
        h("p", { class: "empty", id: "queue-off", text: "The evaluation queue is not available on this server." }),
      );
      return;
    }
    tabs.hidden = false;
    refreshButton.hidden = false;
    drawSubmit();
    if (failure) {
      body.replaceChildren(errorBox("Could not load the evaluation queue.", failure, { retry: () => refresh() }));
      return;
    }
    if (!submissions) {
      body.replaceChildren(
        h("p", { class: "loading", role: "status" }, h("span", { class: "spinner", "aria-hidden": "true" }), "Loading the queue…"),
      );
      return;
    }
    const status = currentStatus();
    const rows = ordered(
      submissions.filter((s) => s.status === status),
      status,
      counts,
    );
    // A redraw keeps keyboard focus on the vote button it was on.
    const active = document.activeElement;
    const kept = body.contains(active) && active.matches("button.vote") ? { ...active.dataset } : null;
    body.replaceChildren(table(rows, status));
    body.setAttribute("aria-busy", "false");
    if (kept) refocus(kept.model, kept.vote);
  }

  /** Read the votes of every model on the current tab that are not known yet. */
  async function loadCounts() {
    if (!submissions) return;
    const status = currentStatus();
    const models = [...new Set(submissions.filter((s) => s.status === status).map((s) => s.model))];
    const missing = models.filter((m) => !counts.has(m));
    await Promise.all(
      missing.map(async (model) => {
        try {
          counts.set(model, await call("GET", queueUrls.votes(model)));
        } catch {
          counts.set(model, null);
        }
      }),
    );
  }

  /** Read the signed-in identity's votes (known once an answer named it). */
  async function loadMine() {
    const user = userName();
    if (!user) {
      mine = new Map();
      return;
    }
    try {
      const votes = await call("GET", queueUrls.userVotes(user));
      if (user === userName()) mine = new Map(votes.map((v) => [v.model, v.vote]));
    } catch {
      // votes stay as they were; the buttons still work
    }
  }

  /** Ask the API again: the list, the votes of the current tab's models, the user's votes. */
  async function refresh() {
    const my = ++loads;
    body.setAttribute("aria-busy", "true");
    let list;
    try {
      list = await call("GET", queueUrls.submissions());
    } catch (error) {
      if (my !== loads) return;
      failure = error;
      submissions = null;
      draw();
      return;
    }
    if (my !== loads) return;
    failure = null;
    submissions = list;
    counts = new Map();
    await Promise.all([loadCounts(), loadMine()]);
    if (my !== loads) return;
    draw();
  }

  function refocus(model, dir) {
    const target = [...body.querySelectorAll("button.vote")].find(
      (b) => b.dataset.model === model && b.dataset.vote === dir,
    );
    target?.focus();
  }

  async function vote(model, dir) {
    const withdraw = mine.get(model) === dir;
    for (const b of body.querySelectorAll("button.vote")) if (b.dataset.model === model) b.disabled = true;
    message.replaceChildren();
    try {
      if (withdraw) {
        await call("DELETE", queueUrls.votes(model), { auth: true });
        mine.delete(model);
        announce(`Your vote on ${model} is withdrawn.`);
      } else {
        const cast = await call("POST", queueUrls.votes(model), { body: { vote: dir }, auth: true });
        mine.set(cast.model, cast.vote);
        learnUser(cast.user);
        announce(`Your ${cast.vote}-vote on ${model} is counted.`);
      }
    } catch (error) {
      message.replaceChildren(errorBox(`Could not vote on ${model}.`, error, { hint: authHint(error) }));
    }
    await refresh();
    refocus(model, dir);
  }

  onSessionChange(() => {
    const user = userName();
    if (user !== lastUser) {
      lastUser = user;
      mine = new Map();
      if (user) loadMine().then(draw);
    }
    if (!signedIn()) message.replaceChildren();
    draw();
  });

  return {
    root,
    update(next) {
      const before = state ? currentStatus() : null;
      state = next;
      if (submissions && before !== currentStatus()) {
        // A new tab: its table once the votes of its models are known (no flash of dashes).
        drawTabs();
        body.setAttribute("aria-busy", "true");
        const my = loads;
        const status = currentStatus();
        loadCounts().then(() => {
          if (my === loads && status === currentStatus()) draw();
        });
        return;
      }
      draw();
    },
    refresh,
  };
}
