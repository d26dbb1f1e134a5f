/** A sortable HTML table: header buttons with aria-sort, nulls always last, stable ties. */

import { esc } from "./format.js";

/**
 * @typedef {object} Column
 * @property {string} key        stable id, kept in the URL as the sort key
 * @property {string} label      header content (HTML, already escaped)
 * @property {string} [title]    header tooltip (plain text)
 * @property {string} [cls]      class of the header and the cells
 * @property {"asc"|"desc"} [first]  direction of the first click (default asc)
 * @property {(row: any) => (number|string|null|undefined)} value  the sort key of a row
 * @property {(row: any) => string} cell  cell content (HTML, already escaped)
 * @property {boolean} [rowHeader]  cells are <th scope="row">
 * @property {string} [extra]    HTML placed in the header after the sort button
 */

const collator = new Intl.Collator("en", { numeric: true, sensitivity: "base" });

function missing(v) {
  return v === null || v === undefined || v === "" || (typeof v === "number" && !Number.isFinite(v));
}

/** The sort actually applied: the requested one when the column exists, else the fallback. */
export function resolveSort(columns, key, dir, fallback) {
  const col = columns.find((c) => c.key === key) ?? columns.find((c) => c.key === fallback);
  if (!col) return { key: "", dir: "asc" };
  const d = col.key === key && (dir === "asc" || dir === "desc") ? dir : (col.first ?? "asc");
  return { key: col.key, dir: d };
}

/** The sort after clicking ``key``: flip when it is already sorted, else its first direction. */
export function nextSort(columns, current, key) {
  const col = columns.find((c) => c.key === key);
  if (!col) return current;
  if (current.key === key) return { key, dir: current.dir === "asc" ? "desc" : "asc" };
  return { key, dir: col.first ?? "asc" };
}

/** Rows sorted by a column; missing values last in both directions; ties keep input order. */
export function sortRows(rows, columns, sort) {
  const col = columns.find((c) => c.key === sort.key);
  if (!col) return rows.slice();
  const sign = sort.dir === "desc" ? -1 : 1;
  const items = rows.map((row, i) => ({ row, i, v: col.value(row) }));
  items.sort((a, b) => {
    const am = missing(a.v);
    const bm = missing(b.v);
    if (am !== bm) return am ? 1 : -1;
    if (!am) {
      const c =
        typeof a.v === "string" || typeof b.v === "string"
          ? collator.compare(String(a.v), String(b.v))
          : a.v - b.v;
      if (c) return sign * c;
    }
    return a.i - b.i;
  });
  return items.map((it) => it.row);
}

function headHtml(columns, sort) {
  const cells = columns.map((c) => {
    const state =
      c.key === sort.key ? (sort.dir === "desc" ? "descending" : "ascending") : "none";
    const cls = c.cls ? ` class="${c.cls}"` : "";
    const title = c.title ? ` title="${esc(c.title)}"` : "";
    return (
      `<th scope="col"${cls} aria-sort="${state}"${title}>` +
      `<button type="button" class="sort" data-sort="${esc(c.key)}">${c.label}</button>` +
      `${c.extra ?? ""}</th>`
    );
  });
  return `<tr>${cells.join("")}</tr>`;
}

function bodyHtml(rows, columns, rowAttrs, emptyText) {
  if (!rows.length) {
    return `<tr><td class="empty" colspan="${columns.length}">${esc(emptyText)}</td></tr>`;
  }
  const open = columns.map((c) => {
    const cls = c.cls ? ` class="${c.cls}"` : "";
    return c.rowHeader ? [`<th scope="row"${cls}>`, "</th>"] : [`<td${cls}>`, "</td>"];
  });
  const parts = [];
  for (const row of rows) {
    parts.push(rowAttrs ? `<tr${rowAttrs(row)}>` : "<tr>");
    for (let j = 0; j < columns.length; j++) {
      parts.push(open[j][0], columns[j].cell(row), open[j][1]);
    }
    parts.push("</tr>");
  }
  return parts.join("");
}

/** A <table> whose header buttons report the clicked column key to ``onSort``. */
export class SortTable {
  constructor(table, onSort) {
    this.table = table;
    if (!table.tHead) table.createTHead();
    if (!table.tBodies.length) table.createTBody();
    table.tHead.addEventListener("click", (event) => {
      const button = event.target.closest("button[data-sort]");
      if (button) onSort(button.dataset.sort);
    });
  }

  /** Draw the header and rows (rows already filtered and sorted). */
  render({ caption, columns, rows, sort, rowAttrs, emptyText = "No rows." }) {
    const cap = this.table.caption ?? this.table.createCaption();
    cap.innerHTML = caption;
    const focused = document.activeElement?.dataset?.sort;
    this.table.tHead.innerHTML = headHtml(columns, sort);
    this.table.tBodies[0].innerHTML = bodyHtml(rows, columns, rowAttrs, emptyText);
    if (focused !== undefined && this.table.tHead.contains(document.activeElement) === false) {
      // Keep keyboard focus on the header button that was just used.
      const again = [...this.table.tHead.querySelectorAll("button[data-sort]")].find(
        (b) => b.dataset.sort === focused,
      );
      again?.focus();
    }
  }
}
