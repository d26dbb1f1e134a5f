/** The model page (its scores in every benchmark) and the task page (scores by subset and split). */

import { directionText, esc, fmtParams, fmtPct, fmtScore, isNum, typeText } from "./format.js";
import { href, leaderboardState, modelState, withState } from "./state.js";
import { SortTable, nextSort, resolveSort, sortRows } from "./table.js";

function backLink(state) {
  const label = state.b ? `Back to ${state.b}` : "Back to the leaderboard";
  return `<nav class="crumbs" aria-label="Breadcrumb"><a data-nav href="${esc(href(leaderboardState(state)))}">← ${esc(label)}</a></nav>`;
}

function httpLink(url, text) {
  return /^https?:\/\//.test(url ?? "")
    ? `<a href="${esc(url)}" rel="noopener noreferrer">${esc(text)}</a>`
    : "";
}

function numCell(fmt, get) {
  return (r) => fmt(get(r));
}

function scoreCol(key, label, get, { hib = true, title = "" } = {}) {
  return {
    key,
    name: label,
    label: `${esc(label)} <span class="dir" aria-hidden="true">${hib ? "↑" : "↓"}</span>`,
    title: title || `${label}; ${directionText(hib)}`,
    cls: "num score",
    first: hib ? "desc" : "asc",
    value: get,
    cell: numCell(fmtScore, get),
  };
}

/**
 * Mount a sortable table whose sort lives in the psort/pdir keys of the URL state;
 * returns update(state) that redraws it for a new sort.
 */
function pageTable({ el, state, columns, rows, caption, on, rowAttrs }) {
  let sort = null;
  const table = new SortTable(el, (key) => {
    const next = nextSort(columns, sort, key);
    on.change({ psort: next.key, pdir: next.dir });
  });
  const update = (current) => {
    sort = resolveSort(columns, current.psort, current.pdir, "");
    const sorted = sortRows(rows, columns, sort);
    table.render({ caption: esc(caption), columns, rows: sorted, sort, rowAttrs });
  };
  update(state);
  return update;
}

function metaList(model) {
  const items = [
    ["Parameters", fmtParams(model.totalParamsB)],
    ["Active parameters", model.activeParamsB !== model.totalParamsB ? fmtParams(model.activeParamsB) : ""],
    ["Type", typeText(model.modelTypes ?? model.modelType)],
    ["Weights", model.openWeights === true ? "open" : model.openWeights === false ? "closed" : ""],
    ["License", model.license ?? ""],
    ["Released", model.releaseDate ?? ""],
    ["Embedding dimension", isNum(model.embeddingDim) ? String(model.embeddingDim) : ""],
    ["Max tokens", isNum(model.maxTokens) ? model.maxTokens.toLocaleString("en-US") : ""],
    ["Revision", model.revision ?? ""],
    ["Languages", (model.languages ?? []).length > 8 ? `${model.languages.length} languages` : (model.languages ?? []).join(", ")],
  ].filter(([, v]) => v);
  const dl = items.map(([k, v]) => `<div><dt>${esc(k)}</dt><dd>${esc(v)}</dd></div>`);
  return `<dl class="meta">${dl.join("")}</dl>`;
}

/** The model page for a ModelScoresOut; returns update(state) for a new sort. */
export function renderModel(main, { data, state, on }) {
  const model = data.model;
  const rows = data.rows ?? [];
  const types = [...new Set(rows.flatMap((r) => r.taskTypes ?? []))].sort();
  const card = httpLink(model.url, "Model card");
  main.innerHTML = `
    ${backLink(state)}
    <section class="page" aria-labelledby="page-title">
      <h1 id="page-title" tabindex="-1">${esc(model.name)}</h1>
      ${card ? `<p class="sub">${card}</p>` : ""}
      ${metaList(model)}
      <h2>Scores in every benchmark</h2>
      <div class="table-wrap" tabindex="0" role="region" aria-label="Scores of ${esc(model.name)} by benchmark">
        <table id="page-table" class="scores"></table>
      </div>
    </section>`;
  const bench = (r) => r.benchmarkDisplayName || r.benchmarkName;
  const columns = [
    {
      key: "benchmark",
      name: "benchmark",
      label: "Benchmark",
      first: "asc",
      rowHeader: true,
      cls: "model",
      value: bench,
      cell: (r) => {
        const target = withState(leaderboardState(state), { b: r.benchmarkName, sort: "", dir: "", lang: "" });
        const badge = r.complete === false ? ' <span class="badge partial" title="does not cover every task of this benchmark">partial</span>' : "";
        // Display names repeat across versions (two "Chemical"s): show the name too.
        const name = bench(r) !== r.benchmarkName ? ` <code class="of">${esc(r.benchmarkName)}</code>` : "";
        return `<a data-nav href="${esc(href(target))}">${esc(bench(r))}</a>${name}${badge}`;
      },
    },
    {
      key: "rank",
      name: "rank",
      label: "Rank",
      cls: "num",
      first: "asc",
      value: (r) => r.rank,
      cell: (r) => (isNum(r.rank) ? `${r.rank} <span class="of">of ${r.totalModels}</span>` : "–"),
    },
    scoreCol("meanTask", "Mean (task)", (r) => r.meanTask),
    scoreCol("meanTaskType", "Mean (type)", (r) => r.meanTaskType),
  ];
  if (rows.some((r) => isNum(r.zeroShotPct) && r.zeroShotPct >= 0)) {
    columns.push({
      key: "zeroShot",
      name: "zero-shot share",
      label: "Zero-shot",
      cls: "num",
      first: "desc",
      value: (r) => (isNum(r.zeroShotPct) && r.zeroShotPct >= 0 ? r.zeroShotPct : null),
      cell: (r) => fmtPct(r.zeroShotPct),
    });
  }
  for (const t of types) columns.push(scoreCol(`type:${t}`, t, (r) => r.scoresByTaskType?.[t]));
  return pageTable({
    el: main.querySelector("#page-table"),
    state,
    columns,
    rows,
    caption: `${model.name}: ${rows.length} benchmark(s)`,
    on,
    rowAttrs: (r) => ` data-benchmark="${esc(r.benchmarkName)}"`,
  });
}

/** The (subset, split) pairs that have at least one score, in the response's order. */
export function breakdownKeys(data) {
  const present = new Set();
  for (const row of data.rows ?? []) {
    for (const [subset, splits] of Object.entries(row.subsetScores ?? {})) {
      for (const split of Object.keys(splits ?? {})) present.add(`${subset}\u0000${split}`);
    }
  }
  const subsets = [...new Set([...(data.subsets ?? []), ...[...present].map((k) => k.split("\u0000")[0])])];
  const splits = [...new Set([...(data.splits ?? []), ...[...present].map((k) => k.split("\u0000")[1])])];
  const out = [];
  for (const subset of subsets) {
    for (const split of splits) if (present.has(`${subset}\u0000${split}`)) out.push([subset, split]);
  }
  return out;
}

/** The task page for a TaskScoresOut; returns update(state) for a new sort. */
export function renderTask(main, { data, state, on }) {
  const task = data.task;
  const hib = task.higherIsBetter !== false;
  const pairs = breakdownKeys(data);
  const manySubsets = new Set(pairs.map((p) => p[0])).size > 1;
  const manySplits = new Set(pairs.map((p) => p[1])).size > 1;
  const benchLinks = (data.benchmarks ?? []).map((b) => {
    const target = withState(leaderboardState(state), { b, sort: "", dir: "", lang: "" });
    return `<a data-nav href="${esc(href(target))}">${esc(b)}</a>`;
  });
  const facts = [
    ["Type", task.type],
    ["Main score", task.mainScore ?? ""],
    ["Direction", directionText(hib, task.unit)],
    ["Languages", (task.languages ?? []).length > 8 ? `${task.languages.length} languages` : (task.languages ?? []).join(", ")],
    ["Domains", (task.domains ?? []).join(", ")],
  ].filter(([, v]) => v);
  const ref = httpLink(task.reference, "Reference");
  main.innerHTML = `
    ${backLink(state)}
    <section class="page" aria-labelledby="page-title">
      <h1 id="page-title" tabindex="-1">${esc(task.name)}</h1>
      ${task.description ? `<p class="desc">${esc(task.description)}</p>` : ""}
      <dl class="meta">${facts.map(([k, v]) => `<div><dt>${esc(k)}</dt><dd>${esc(v)}</dd></div>`).join("")}</dl>
      ${benchLinks.length ? `<p class="sub">In: ${benchLinks.join(", ")}</p>` : ""}${ref ? `<p>${ref}</p>` : ""}
      <h2>Scores by model, subset and split</h2>
      <div class="table-wrap" tabindex="0" role="region" aria-label="Scores on ${esc(task.name)}">
        <table id="page-table" class="scores"></table>
      </div>
    </section>`;
  const columns = [
    { key: "rank", name: "rank", label: "Rank", cls: "num", first: "asc", value: (r) => r.rank, cell: (r) => (isNum(r.rank) ? String(r.rank) : "–") },
    {
      key: "model",
      name: "model name",
      label: "Model",
      cls: "model",
      first: "asc",
      rowHeader: true,
      value: (r) => r.model.name,
      cell: (r) => `<a data-nav href="${esc(href(modelState(state, r.model.name)))}">${esc(r.model.name)}</a>`,
    },
    scoreCol("score", task.mainScore ? `Score (${task.mainScore})` : "Score", (r) => r.score, {
      hib,
      title: `Task score; ${directionText(hib, task.unit)}`,
    }),
  ];
  for (const [subset, split] of pairs) {
    const label = manySubsets && manySplits ? `${subset} · ${split}` : manySubsets ? subset : split;
    const col = scoreCol(`s:${subset}|${split}`, label, (r) => r.subsetScores?.[subset]?.[split], {
      hib,
      title: `subset ${subset}, split ${split}; ${directionText(hib, task.unit)}`,
    });
    col.cls = "num score sub";
    columns.push(col);
  }
  return pageTable({
    el: main.querySelector("#page-table"),
    state,
    columns,
    rows: data.rows ?? [],
    caption: `${task.name}: ${(data.rows ?? []).length} model(s); ${pairs.length} subset/split column(s)`,
    on,
    rowAttrs: (r) => ` data-model="${esc(r.model.name)}"`,
  });
}
