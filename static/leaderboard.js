/** The leaderboard view: heading, filters, language choice, CSV link, table and chart tabs. */

import { normLanguages, urls } from "./api.js";
import { renderChart } from "./chart.js";
import { describe, filterRows, leaderboardColumns, modelTypes } from "./columns.js";
import { directionText, esc } from "./format.js";
import { href, modelState, taskState, withState } from "./state.js";
import { SortTable, nextSort, resolveSort, sortRows } from "./table.js";

let firstTable = true;

function markFirstRender() {
  if (!firstTable) return;
  firstTable = false;
  performance.mark("lb:table-rendered");
  requestAnimationFrame(() =>
    setTimeout(() => {
      performance.mark("lb:table-painted");
      // A DOM flag too, for tools that wait on selectors (CSP forbids their eval-based polling).
      document.documentElement.dataset.tablePainted = "";
    }, 0),
  );
}

function taskListHtml(info, state) {
  const rows = info.tasks.map((name) => {
    const t = info.meta.get(name) ?? {};
    return (
      `<tr><th scope="row"><a data-nav href="${esc(href(taskState(state, name)))}">${esc(name)}</a></th>` +
      `<td>${esc(t.type ?? "")}</td><td>${esc(t.mainScore ?? "")}</td>` +
      `<td>${esc(directionText(t.higherIsBetter !== false, t.unit))}</td></tr>`
    );
  });
  return (
    `<table class="plain"><caption class="sr-only">Tasks of this benchmark</caption>` +
    `<thead><tr><th scope="col">Task</th><th scope="col">Type</th><th scope="col">Metric</th>` +
    `<th scope="col">Direction</th></tr></thead><tbody>${rows.join("")}</tbody></table>`
  );
}

function shellHtml({ scores, bench, info }) {
  const name = scores.benchmarkName;
  const display = bench?.displayName || name;
  const sub = [
    display !== name ? `<code>${esc(name)}</code>` : "",
    `${scores.rows.length} models`,
    `${info.nTasks} tasks`,
    scores.rankMethod ? `ranked by ${esc(scores.rankMethod.replace(/_/g, " "))}` : "",
  ].filter(Boolean);
  const desc = bench?.description ? `<p class="desc">${esc(bench.description)}</p>` : "";
  const ref = /^https?:\/\//.test(bench?.reference ?? "")
    ? ` <a href="${esc(bench.reference)}" rel="noopener noreferrer">Reference</a>`
    : "";
  const langs = (bench?.languages ?? []).map((l) => `<option value="${esc(l)}"></option>`);
  const types = modelTypes(scores.rows).map((t) => `<option value="${esc(t)}">${esc(t)}</option>`);
  const yOptions = [
    ["meanTask", "Mean (task)"],
    ...(info.hasMeanType ? [["meanTaskType", "Mean (type)"]] : []),
    ...info.taskTypes.map((t) => [`type:${t}`, t]),
  ].map(([v, l]) => `<option value="${esc(v)}">${esc(l)}</option>`);
  const legend = info.partialCount
    ? `<p class="legend" id="lb-legend"><span class="badge partial">N/${info.nTasks} tasks</span> ` +
      `Partial coverage: the model has scores for only N of the ${info.nTasks} tasks, so its ` +
      `means are not comparable with complete models${info.partialRanking ? `; partial models are ${esc(info.partialRanking)}` : ""}.</p>`
    : "";
  return `
    <header class="lb-head">
      <h1 id="lb-title" tabindex="-1">${esc(display)}</h1>
      <p class="sub">${sub.join(" · ")}${ref}</p>
      ${desc}
      <details class="about"><summary>Tasks (${info.nTasks}): types, metrics and directions</summary>
        ${taskListHtml(info, {})}</details>
    </header>
    <div class="controls">
      <form class="filters" id="lb-filters" role="search" aria-label="Filter models">
        <div class="field"><label for="f-q">Model name</label>
          <input id="f-q" name="q" type="search" placeholder="contains…" autocomplete="off"></div>
        <div class="field"><label for="f-open">Weights</label>
          <select id="f-open" name="open"><option value="">any</option>
            <option value="yes">open</option><option value="no">closed</option></select></div>
        <div class="field"><label for="f-type">Model type</label>
          <select id="f-type" name="type"><option value="">any</option>${types.join("")}</select></div>
        <fieldset class="field range"><legend>Parameters (billions)</legend>
          <label class="sr-only" for="f-pmin">Minimum parameters in billions</label>
          <input id="f-pmin" name="pmin" type="number" min="0" step="any" inputmode="decimal" placeholder="min">
          <span aria-hidden="true">–</span>
          <label class="sr-only" for="f-pmax">Maximum parameters in billions</label>
          <input id="f-pmax" name="pmax" type="number" min="0" step="any" inputmode="decimal" placeholder="max">
        </fieldset>
        <div class="field check"><input id="f-tasks" name="tasks" type="checkbox">
          <label for="f-tasks">Show every task</label></div>
        <div class="field"><button type="button" id="f-clear">Clear filters</button></div>
      </form>
      <form class="langs" id="lb-langs" aria-label="Languages">
        <div class="field"><label for="f-lang">Languages</label>
          <input id="f-lang" name="lang" list="f-lang-list" autocomplete="off"
            placeholder="all, or e.g. eng, fra"><datalist id="f-lang-list">${langs.join("")}</datalist></div>
        <div class="field"><button type="submit">Apply</button></div>
      </form>
      <div class="field actions"><a class="button" id="lb-csv" download>Download CSV</a></div>
    </div>
    <nav class="tabs" aria-label="Leaderboard view">
      <a data-nav data-tab="" id="tab-table">Table</a><a data-nav data-tab="chart" id="tab-chart">Chart</a>
    </nav>
    <p id="lb-status" class="status" role="status"></p>
    <div id="lb-table-sec">
      <div class="table-wrap" tabindex="0" role="region" aria-labelledby="lb-table-cap">
        <table id="lb-table" class="scores"></table>
      </div>
      ${legend}
    </div>
    <div id="lb-chart-sec" hidden>
      <div class="field inline"><label for="f-y">Score</label>
        <select id="f-y">${yOptions.join("")}</select></div>
      <div id="lb-chart"></div>
    </div>`;
}

const FILTER_KEYS = ["q", "open", "type", "pmin", "pmax"];

/**
 * Build the leaderboard for one scores response; returns {root, update(state)}.
 * ``on`` receives user intents: change(changes, {push}) for state edits.
 */
export function createLeaderboard({ scores, bench, on }) {
  const info = describe(scores);
  const root = document.createElement("section");
  root.className = "leaderboard";
  root.setAttribute("aria-labelledby", "lb-title");
  root.innerHTML = shellHtml({ scores, bench, info });
  const $ = (sel) => root.querySelector(sel);
  const about = $(".about");
  const filters = $("#lb-filters");
  let state = null;
  let columns = [];
  const table = new SortTable($("#lb-table"), (key) => {
    const sort = nextSort(columns, resolveSort(columns, state.sort, state.dir, "rank"), key);
    // The API's own order (rank ascending) is the default and keeps the URL short.
    const isDefault = sort.key === "rank" && sort.dir === "asc";
    on.change({ sort: isDefault ? "" : sort.key, dir: isDefault ? "" : sort.dir });
  });

  filters.addEventListener("input", (event) => {
    const el = event.target;
    if (el.name === "tasks") on.change({ tasks: el.checked ? "1" : "" });
    else if (FILTER_KEYS.includes(el.name)) on.change({ [el.name]: el.value });
  });
  filters.addEventListener("submit", (event) => event.preventDefault());
  $("#f-clear").addEventListener("click", () =>
    on.change(Object.fromEntries(FILTER_KEYS.map((k) => [k, ""]))),
  );
  $("#lb-langs").addEventListener("submit", (event) => {
    event.preventDefault();
    on.change({ lang: normLanguages($("#f-lang").value) }, { push: true });
  });
  $("#f-y").addEventListener("change", (event) =>
    on.change({ y: event.target.value === "meanTask" ? "" : event.target.value }),
  );

  function sync(state) {
    for (const key of FILTER_KEYS) {
      const el = filters.elements.namedItem(key);
      if (key === "type" && state.type && !el.querySelector(`option[value="${CSS.escape(state.type)}"]`)) {
        el.add(new Option(state.type, state.type));
      }
      // Never rewrite the field being typed in (a number field reads "" while it holds "0.").
      if (el !== document.activeElement && el.value !== state[key]) el.value = state[key];
    }
    $("#f-tasks").checked = state.tasks === "1";
    const lang = $("#f-lang");
    if (document.activeElement !== lang) lang.value = state.lang;
    $("#f-y").value = state.y || "meanTask";
    if (!$("#f-y").value) $("#f-y").value = "meanTask";
    $("#lb-csv").setAttribute("href", urls.csv(scores.benchmarkName, state.lang));
    for (const tab of root.querySelectorAll(".tabs a")) {
      const view = tab.dataset.tab;
      tab.setAttribute("href", href(withState(state, { view })));
      if ((state.view === "chart" ? "chart" : "") === view) tab.setAttribute("aria-current", "page");
      else tab.removeAttribute("aria-current");
    }
    about.querySelector("table").outerHTML = taskListHtml(info, state);
  }

  function renderTableView(rows) {
    columns = leaderboardColumns(info, state, rows);
    const sort = resolveSort(columns, state.sort, state.dir, "rank");
    const sorted = sortRows(rows, columns, sort);
    const sortCol = columns.find((c) => c.key === sort.key);
    const order = sort.dir === "desc" ? "descending" : "ascending";
    const sortText = sortCol ? `, sorted by ${sortCol.name ?? sortCol.key} (${order})` : "";
    const langs = scores.languages?.length ? ` in ${scores.languages.join(", ")}` : "";
    table.render({
      caption: `<span id="lb-table-cap">${esc(bench?.displayName || scores.benchmarkName)}: ${rows.length} of ${scores.rows.length} models${esc(langs)}${esc(sortText)}</span>`,
      columns,
      rows: sorted,
      sort,
      rowAttrs: (r) =>
        ` data-model="${esc(r.model.name)}"${r.complete === false ? ' class="partial"' : ""}`,
      emptyText: scores.rows.length ? "No model matches the filters." : "No results yet.",
    });
    markFirstRender();
  }

  function renderChartView(rows) {
    const y = state.y || "meanTask";
    const type = y.startsWith("type:") ? y.slice(5) : null;
    const label = type ?? (y === "meanTaskType" ? "Mean (type)" : "Mean (task)");
    renderChart($("#lb-chart"), {
      rows,
      metric: type ? (r) => r.scoresByTaskType?.[type] : (r) => r[y === "meanTaskType" ? y : "meanTask"],
      label,
      higherIsBetter: type ? info.typeHib.get(type) !== false : info.meanHib,
      linkFor: (r) => href(modelState(state, r.model.name)),
      title: `${bench?.displayName || scores.benchmarkName}: ${label} against parameter count`,
    });
  }

  function update(next) {
    state = next;
    sync(state);
    const rows = filterRows(scores.rows, state);
    const chart = state.view === "chart";
    $("#lb-table-sec").hidden = chart;
    $("#lb-chart-sec").hidden = !chart;
    $("#lb-status").textContent = `Showing ${rows.length} of ${scores.rows.length} models.`;
    if (chart) renderChartView(rows);
    else renderTableView(rows);
  }

  return { root, update, info };
}
