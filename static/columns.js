/** Leaderboard columns and filters: what a ScoresOut row shows and which rows a view keeps. */

import { arrow, directionText, esc, fmtParams, fmtPct, fmtScore, isNum, typeList } from "./format.js";
import { href, modelState, taskState } from "./state.js";

/** Parameters of a row in billions (row value first, then the model's). */
export function paramsOf(row) {
  return row.totalParamsB ?? row.model?.totalParamsB ?? null;
}

function weightsOf(row) {
  const open = row.model?.openWeights;
  return open === true ? "open" : open === false ? "closed" : null;
}

/**
 * What a benchmark's scores say about their columns: task metadata, directions of means,
 * how partial rows are ranked.
 */
export function describe(scores) {
  const meta = new Map((scores.tasksMeta ?? []).map((t) => [t.name, t]));
  const tasks = scores.tasks ?? [];
  const lowerAll = (list) => list.length > 0 && list.every((t) => t.higherIsBetter === false);
  const typeHib = new Map();
  for (const type of scores.taskTypes ?? []) {
    const ofType = [...meta.values()].filter((t) => t.type === type);
    typeHib.set(type, Boolean(scores.normalized) || !lowerAll(ofType));
  }
  const rows = scores.rows ?? [];
  const ranks = (complete) =>
    rows.filter((r) => (r.complete !== false) === complete && isNum(r.rank)).map((r) => r.rank);
  const partial = rows.filter((r) => r.complete === false);
  const fullRanks = ranks(true);
  const partRanks = ranks(false);
  let partialRanking = "";
  if (partial.length && !partRanks.length) partialRanking = "not ranked";
  else if (partial.length && (!fullRanks.length || Math.max(...fullRanks) < Math.min(...partRanks)))
    partialRanking = "ranked after complete models";
  const has = (field) => rows.some((r) => isNum(r[field]));
  return {
    meta,
    nTasks: tasks.length,
    tasks,
    taskTypes: scores.taskTypes ?? [],
    typeHib,
    meanHib: Boolean(scores.normalized) || !lowerAll([...meta.values()]),
    partialCount: partial.length,
    partialRanking,
    hasRating: has("rating"),
    hasMeanType: has("meanTaskType"),
    hasPrivate: has("meanPrivate"),
    showZeroShot: Boolean(scores.showZeroShot) && has("zeroShotPct"),
  };
}

/** The explanation attached to a partial row's badge. */
export function partialTitle(row, info) {
  const n = row.tasksCovered ?? 0;
  const tail = info.partialRanking ? `; ${info.partialRanking}` : "";
  return `covers ${n} of ${info.nTasks} tasks${tail}`;
}

function rankCell(row) {
  if (!isNum(row.rank)) return '<span class="na" title="not ranked">–</span>';
  const lo = row.rankLow;
  const hi = row.rankHigh;
  if (isNum(lo) && isNum(hi) && lo !== hi) {
    return `${row.rank}<span class="ci" title="rank interval ${lo}–${hi}">${lo}–${hi}</span>`;
  }
  return String(row.rank);
}

function scoreLabel(text, hib, unit) {
  const u = unit ? ` <small class="unit">${esc(unit)}</small>` : "";
  return (
    `${esc(text)}${u} <span class="dir" aria-hidden="true">${arrow(hib)}</span>` +
    `<span class="sr-only">, ${directionText(hib, unit)}</span>`
  );
}

function scoreColumn({ key, label, title, hib, unit, value, best }) {
  return {
    key,
    name: label,
    label: scoreLabel(label, hib, unit),
    title,
    cls: "num score",
    first: hib ? "desc" : "asc",
    value,
    cell: (row) => {
      const v = value(row);
      if (!isNum(v)) return "";
      return v === best.get(key) ? `<strong>${fmtScore(v)}</strong>` : fmtScore(v);
    },
  };
}

/** The columns of the leaderboard for the current state (per-task columns when asked). */
export function leaderboardColumns(info, state, rows) {
  const best = new Map();
  const cols = [
    {
      key: "rank",
      name: "rank",
      label: "Rank",
      title: "Rank in this benchmark (with the rank interval where available)",
      cls: "num rank",
      first: "asc",
      value: (r) => r.rank,
      cell: rankCell,
    },
    {
      key: "model",
      name: "model name",
      label: "Model",
      cls: "model",
      first: "asc",
      rowHeader: true,
      value: (r) => r.model.name,
      cell: (r) => {
        const link = `<a data-nav href="${esc(href(modelState(state, r.model.name)))}">${esc(r.model.name)}</a>`;
        if (r.complete !== false) return link;
        const title = esc(partialTitle(r, info));
        const n = r.tasksCovered ?? 0;
        return `${link} <span class="badge partial" title="${title}">${n}/${info.nTasks} tasks</span>`;
      },
    },
  ];
  if (info.showZeroShot) {
    cols.push({
      key: "zeroShot",
      name: "zero-shot share",
      label: "Zero-shot",
      title: "Share of the benchmark's tasks the model was not trained on",
      cls: "num",
      first: "desc",
      value: (r) => (isNum(r.zeroShotPct) && r.zeroShotPct >= 0 ? r.zeroShotPct : null),
      cell: (r) => fmtPct(r.zeroShotPct),
    });
  }
  cols.push(
    {
      key: "params",
      name: "parameters",
      label: "Params",
      title: "Total number of parameters",
      cls: "num",
      first: "desc",
      value: paramsOf,
      cell: (r) => fmtParams(paramsOf(r)),
    },
    {
      key: "weights",
      name: "weights",
      label: "Weights",
      title: "Open or closed weights",
      first: "asc",
      value: weightsOf,
      cell: (r) => weightsOf(r) ?? "",
    },
  );
  if (info.hasRating) {
    cols.push({
      key: "rating",
      name: "rating",
      label: "Rating",
      title: "Bradley-Terry rating",
      cls: "num",
      first: "desc",
      value: (r) => r.rating,
      cell: (r) => fmtScore(r.rating),
    });
  }
  const dirWord = (hib) => directionText(hib);
  const means = [
    ["meanTask", "Mean (task)", "Mean score over all tasks", true],
    ["meanTaskType", "Mean (type)", "Mean of the per-type means", info.hasMeanType],
    // Public and private means only differ from the task mean when some tasks are private.
    ["meanPublic", "Mean (public)", "Mean over public tasks", info.hasPrivate],
    ["meanPrivate", "Mean (private)", "Mean over private tasks", info.hasPrivate],
  ];
  for (const [key, label, title, show] of means) {
    if (!show) continue;
    cols.push(
      scoreColumn({
        key,
        label,
        title: `${title}; ${dirWord(info.meanHib)}`,
        hib: info.meanHib,
        value: (r) => r[key],
        best,
      }),
    );
  }
  for (const type of info.taskTypes) {
    const n = info.tasks.filter((t) => info.meta.get(t)?.type === type).length;
    const hib = info.typeHib.get(type) !== false;
    cols.push(
      scoreColumn({
        key: `type:${type}`,
        label: type,
        title: `Mean over the ${n} ${type} task(s); ${dirWord(hib)}`,
        hib,
        value: (r) => r.scoresByTaskType?.[type],
        best,
      }),
    );
  }
  if (state.tasks === "1") {
    for (const task of info.tasks) {
      const meta = info.meta.get(task) ?? {};
      const hib = meta.higherIsBetter !== false;
      const metric = meta.mainScore ? `, ${meta.mainScore}` : "";
      const col = scoreColumn({
        key: `task:${task}`,
        label: task,
        title: `${task} (${meta.type ?? "task"}${metric}); ${directionText(hib, meta.unit)}`,
        hib,
        unit: meta.unit,
        value: (r) => r.scoresByTask?.[task],
        best,
      });
      col.cls = "num score task";
      const link = esc(href(taskState(state, task)));
      col.extra = ` <a data-nav class="info" href="${link}" title="Task page: ${esc(task)}"><span aria-hidden="true">ⓘ</span><span class="sr-only">Task page: ${esc(task)}</span></a>`;
      cols.push(col);
    }
  }
  for (const col of cols) {
    if (!col.cls?.includes("score")) continue;
    const hib = col.first === "desc";
    let top = null;
    for (const r of rows) {
      const v = col.value(r);
      if (isNum(v) && (top === null || (hib ? v > top : v < top))) top = v;
    }
    best.set(col.key, top);
  }
  return cols;
}

/** The model types present in the rows, sorted. */
export function modelTypes(rows) {
  const seen = new Set();
  for (const r of rows) for (const t of typeList(r.model?.modelTypes ?? r.model?.modelType)) seen.add(t);
  return [...seen].sort();
}

/** Rows kept by the name, weights, parameter-range and type filters of ``state``. */
export function filterRows(rows, state) {
  const q = state.q.trim().toLowerCase();
  const pmin = state.pmin === "" ? Number.NaN : Number(state.pmin);
  const pmax = state.pmax === "" ? Number.NaN : Number(state.pmax);
  const open = state.open;
  const type = state.type;
  return rows.filter((r) => {
    if (q && !r.model.name.toLowerCase().includes(q)) return false;
    if (open === "yes" && r.model.openWeights !== true) return false;
    if (open === "no" && r.model.openWeights !== false) return false;
    if (type && !typeList(r.model.modelTypes ?? r.model.modelType).includes(type)) return false;
    if (Number.isFinite(pmin) || Number.isFinite(pmax)) {
      const p = paramsOf(r);
      if (!isNum(p)) return false;
      if (Number.isFinite(pmin) && p < pmin) return false;
      if (Number.isFinite(pmax) && p > pmax) return false;
    }
    return true;
  });
}
