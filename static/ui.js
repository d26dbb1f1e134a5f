/** Shared pieces of the page: loading and error states, the benchmark menu, the snapshot line. */

import { esc, fmtDate } from "./format.js";

/** Show a loading message in ``el`` (announced politely). */
export function showLoading(el, text) {
  el.setAttribute("aria-busy", "true");
  el.innerHTML = `<p class="loading" role="status"><span class="spinner" aria-hidden="true"></span>${esc(text)}</p>`;
}

/** Show a failed request with its reason and a Retry button that calls ``retry``. */
export function showError(el, { title, error, retry }) {
  el.removeAttribute("aria-busy");
  el.innerHTML =
    `<div class="error" role="alert"><p class="error-title">${esc(title)}</p>` +
    `<p class="error-detail">${esc(error?.message ?? String(error))}</p>` +
    `<p><button type="button" class="retry">Retry</button></p></div>`;
  const button = el.querySelector(".retry");
  // After a retry that failed again, keyboard focus returns to the new Retry button.
  if (document.activeElement === el) button.focus();
  button.addEventListener("click", () => {
    if (el.hasAttribute("tabindex")) el.focus();
    retry();
  });
}

/** Stop showing a loading state. */
export function done(el) {
  el.removeAttribute("aria-busy");
}

function isGroup(node) {
  return Array.isArray(node?.children);
}

/** Benchmark names of a menu tree, depth first. */
export function menuLeaves(nodes) {
  const out = [];
  for (const node of nodes ?? []) {
    if (isGroup(node)) out.push(...menuLeaves(node.children));
    else if (node?.name) out.push(node);
  }
  return out;
}

function menuHtml(nodes) {
  const items = nodes.map((node) => {
    if (isGroup(node)) {
      const title = node.description ? ` title="${esc(node.description)}"` : "";
      return (
        `<li><details${node.open ? " open" : ""}><summary${title}>${esc(node.name)}</summary>` +
        `${menuHtml(node.children)}</details></li>`
      );
    }
    const label = node.displayName || node.name;
    const title = label !== node.name ? ` title="${esc(node.name)}"` : "";
    return `<li><a data-nav data-bench="${esc(node.name)}"${title}>${esc(label)}</a></li>`;
  });
  return `<ul>${items.join("")}</ul>`;
}

/** Draw the menu tree into ``el`` (links get their href from ``updateMenu``). */
export function renderMenu(el, groups) {
  done(el);
  el.innerHTML = `<h2 class="menu-title">Benchmarks</h2>${menuHtml(groups)}`;
}

/** Point every menu link at its benchmark with ``linkFor`` and mark the current one. */
export function updateMenu(el, { current, linkFor }) {
  for (const a of el.querySelectorAll("a[data-bench]")) {
    const name = a.dataset.bench;
    a.setAttribute("href", linkFor(name));
    if (name === current) {
      a.setAttribute("aria-current", "page");
      for (let d = a.closest("details"); d; d = d.parentElement.closest("details")) d.open = true;
    } else {
      a.removeAttribute("aria-current");
    }
  }
}

const snapshot = { id: "", updated: "" };

/** Record what is known about the dataset version and show it in ``el``. */
export function setSnapshot(el, { id, updated }) {
  if (id) snapshot.id = id;
  if (updated) snapshot.updated = updated;
  if (!snapshot.id && !snapshot.updated) return;
  const parts = [];
  if (snapshot.id) {
    const short = snapshot.id.length > 12 ? snapshot.id.slice(0, 12) : snapshot.id;
    parts.push(`Data snapshot <code id="snapshot-id" title="${esc(snapshot.id)}">${esc(short)}</code>`);
  }
  if (snapshot.updated) {
    const d = new Date(snapshot.updated);
    const iso = Number.isNaN(d.getTime()) ? "" : d.toISOString();
    parts.push(`updated <time id="snapshot-time" datetime="${esc(iso)}">${esc(fmtDate(snapshot.updated))}</time>`);
  }
  el.innerHTML = parts.join(", ");
}

/** True once a snapshot id is known. */
export function hasSnapshot() {
  return Boolean(snapshot.id);
}
