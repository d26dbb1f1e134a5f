/** Score against parameter count: an inline SVG scatter with a log-scale x axis and tooltips. */

import { esc, fmtParams, fmtScore, isNum } from "./format.js";

const W = 760;
const H = 420;
const M = { l: 72, r: 20, t: 16, b: 52 };

function niceStep(span) {
  const raw = span / 5;
  const mag = 10 ** Math.floor(Math.log10(raw));
  const f = raw / mag;
  return (f < 1.5 ? 1 : f < 3 ? 2 : f < 7 ? 5 : 10) * mag;
}

function yDomain(values) {
  let lo = Math.min(...values);
  let hi = Math.max(...values);
  if (lo === hi) {
    const pad = Math.abs(lo) * 0.05 || 1;
    lo -= pad;
    hi += pad;
  }
  const step = niceStep(hi - lo);
  return { lo: Math.floor(lo / step) * step, hi: Math.ceil(hi / step) * step, step };
}

/** Points with a parameter count and a score, and the best score at or below each size. */
export function chartPoints(rows, metric, higherIsBetter) {
  const points = [];
  for (const row of rows) {
    const p = row.totalParamsB ?? row.model?.totalParamsB;
    const y = metric(row);
    if (isNum(p) && p > 0 && isNum(y)) points.push({ row, p, y });
  }
  const bySize = [...points].sort((a, b) => a.p - b.p || (higherIsBetter ? b.y - a.y : a.y - b.y));
  const frontier = [];
  for (const pt of bySize) {
    const last = frontier[frontier.length - 1];
    if (!last || (higherIsBetter ? pt.y > last.y : pt.y < last.y)) frontier.push(pt);
  }
  return { points, frontier };
}

/**
 * Draw the chart into ``el``.
 * @param {HTMLElement} el
 * @param {{rows: any[], metric: (row: any) => number|null, label: string,
 *          higherIsBetter: boolean, linkFor: (row: any) => string, title: string}} opts
 */
export function renderChart(el, { rows, metric, label, higherIsBetter, linkFor, title }) {
  const { points, frontier } = chartPoints(rows, metric, higherIsBetter);
  const missing = rows.length - points.length;
  const note = missing
    ? `<p class="note">${missing} model(s) without a parameter count or a score are not shown.</p>`
    : "";
  if (!points.length) {
    el.innerHTML = `<p class="empty">No model has both a parameter count and a score to plot.</p>${note}`;
    return;
  }
  const logs = points.map((d) => Math.log10(d.p));
  let x0 = Math.floor(Math.min(...logs));
  let x1 = Math.ceil(Math.max(...logs));
  if (x0 === x1) x1 += 1;
  const yd = yDomain(points.map((d) => d.y));
  const sx = (p) => M.l + ((Math.log10(p) - x0) / (x1 - x0)) * (W - M.l - M.r);
  const sy = (v) => H - M.b - ((v - yd.lo) / (yd.hi - yd.lo)) * (H - M.t - M.b);
  const parts = [];
  for (let k = x0; k <= x1; k++) {
    const x = sx(10 ** k).toFixed(1);
    parts.push(
      `<line class="grid" x1="${x}" x2="${x}" y1="${M.t}" y2="${H - M.b}"/>`,
      `<text class="tick" x="${x}" y="${H - M.b + 18}" text-anchor="middle">${fmtParams(10 ** k)}</text>`,
    );
    for (let m = 2; m < 10 && k < x1; m++) {
      const xm = sx(m * 10 ** k).toFixed(1);
      parts.push(`<line class="minor" x1="${xm}" x2="${xm}" y1="${H - M.b}" y2="${H - M.b + 4}"/>`);
    }
  }
  const decimals = Math.max(0, -Math.floor(Math.log10(yd.step)));
  for (let v = yd.lo; v <= yd.hi + yd.step / 2; v += yd.step) {
    const y = sy(v).toFixed(1);
    parts.push(
      `<line class="grid" x1="${M.l}" x2="${W - M.r}" y1="${y}" y2="${y}"/>`,
      `<text class="tick" x="${M.l - 8}" y="${y}" dy="0.32em" text-anchor="end">${v.toFixed(decimals)}</text>`,
    );
  }
  parts.push(
    `<text class="axis" x="${(M.l + W - M.r) / 2}" y="${H - 10}" text-anchor="middle">Total parameters (log scale)</text>`,
    `<text class="axis" transform="translate(14 ${(M.t + H - M.b) / 2}) rotate(-90)" text-anchor="middle">${esc(label)}</text>`,
  );
  if (frontier.length > 1) {
    // A step line: the best score stays the best until a larger model beats it.
    const path = frontier.map((d, i) =>
      i ? `H${sx(d.p).toFixed(1)}V${sy(d.y).toFixed(1)}` : `M${sx(d.p).toFixed(1)},${sy(d.y).toFixed(1)}`,
    );
    parts.push(`<path class="frontier" d="${path.join("")}"/>`);
  }
  points.forEach((d, i) => {
    const open = d.row.model?.openWeights;
    const cls = open === true ? "open" : open === false ? "closed" : "unknown";
    const text = `${d.row.model.name}: ${fmtScore(d.y)} ${label}, ${fmtParams(d.p)} parameters${isNum(d.row.rank) ? `, rank ${d.row.rank}` : ""}`;
    parts.push(
      `<a class="pt" data-nav data-i="${i}" href="${esc(linkFor(d.row))}">` +
        `<circle class="${cls}" cx="${sx(d.p).toFixed(1)}" cy="${sy(d.y).toFixed(1)}" r="5">` +
        `<title>${esc(text)}</title></circle></a>`,
    );
  });
  el.innerHTML =
    `<div class="chart-box"><svg viewBox="0 0 ${W} ${H}" role="group" aria-labelledby="chart-title">` +
    `<title id="chart-title">${esc(title)}</title>${parts.join("")}</svg>` +
    `<div class="tip" role="tooltip" hidden></div></div>` +
    `<p class="legend"><span class="key open" aria-hidden="true"></span> open weights ` +
    `<span class="key closed" aria-hidden="true"></span> closed weights ` +
    `<span class="key unknown" aria-hidden="true"></span> unknown ` +
    `<span class="key frontier" aria-hidden="true"></span> best score at or below each size</p>${note}`;
  wireTooltip(el, points, label);
}

function wireTooltip(el, points, label) {
  const box = el.querySelector(".chart-box");
  const tip = el.querySelector(".tip");
  const show = (event) => {
    const a = event.target.closest?.("a.pt");
    if (!a) return;
    const d = points[Number(a.dataset.i)];
    const rank = isNum(d.row.rank) ? `rank ${d.row.rank} · ` : "";
    tip.innerHTML =
      `<strong>${esc(d.row.model.name)}</strong><br>${esc(label)}: ${fmtScore(d.y)}<br>` +
      `${rank}${fmtParams(d.p)} parameters`;
    tip.hidden = false;
    const c = a.querySelector("circle").getBoundingClientRect();
    const b = box.getBoundingClientRect();
    const left = Math.min(c.left - b.left + 12, b.width - tip.offsetWidth - 4);
    tip.style.left = `${Math.max(4, left)}px`;
    tip.style.top = `${Math.max(4, c.top - b.top - tip.offsetHeight - 8)}px`;
  };
  const hide = (event) => {
    if (event.target.closest?.("a.pt")) tip.hidden = true;
  };
  box.addEventListener("pointerover", show);
  box.addEventListener("focusin", show);
  box.addEventListener("pointerout", hide);
  box.addEventListener("focusout", hide);
}
