/** Formatting helpers: HTML escaping, numbers, parameter counts, dates. */

const ESCAPES = { "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" };

/** Escape text for use inside HTML element content or a quoted attribute. */
export function esc(value) {
  return String(value ?? "").replace(/[&<>"']/g, (c) => ESCAPES[c]);
}

/** True for a finite number (the API sends null for missing scores). */
export function isNum(value) {
  return typeof value === "number" && Number.isFinite(value);
}

/** A score with precision suited to its magnitude (fractions keep 4 decimals, percents 2). */
export function fmtScore(value) {
  if (!isNum(value)) return "";
  const a = Math.abs(value);
  if (a >= 1000) return Math.round(value).toLocaleString("en-US");
  if (a >= 100) return value.toFixed(1);
  if (a >= 1) return value.toFixed(2);
  if (a > 0 && a < 0.001) return value.toPrecision(2);
  return value.toFixed(4);
}

/** A parameter count given in billions, as 22M / 1.5B / 70B. */
export function fmtParams(billions) {
  if (!isNum(billions)) return "";
  if (billions >= 100) return `${Math.round(billions)}B`;
  if (billions >= 1) return `${billions.toFixed(1).replace(/\.0$/, "")}B`;
  const millions = billions * 1000;
  if (millions >= 1) return `${Math.round(millions)}M`;
  return `${Math.round(millions * 1000)}K`;
}

/** A percentage 0..100 rounded to a whole number. */
export function fmtPct(value) {
  return isNum(value) && value >= 0 ? `${Math.round(value)}%` : "";
}

/** An ISO or HTTP date as "YYYY-MM-DD HH:MM UTC" (stable across time zones). */
export function fmtDate(value) {
  if (!value) return "";
  const d = new Date(value);
  if (Number.isNaN(d.getTime())) return String(value);
  return `${d.toISOString().slice(0, 16).replace("T", " ")} UTC`;
}

/** A model type that may be a list or a string, as text. */
export function typeText(modelType) {
  if (Array.isArray(modelType)) return modelType.join(", ");
  return modelType ?? "";
}

/** The model types of a model as a list (empty when unknown). */
export function typeList(modelType) {
  if (Array.isArray(modelType)) return modelType.filter(Boolean);
  return modelType ? [modelType] : [];
}

/** "higher is better" / "lower is better" with the unit when known. */
export function directionText(higherIsBetter, unit) {
  const dir = higherIsBetter === false ? "lower is better" : "higher is better";
  return unit ? `${dir}, in ${unit}` : dir;
}

/** An arrow for the direction of a score. */
export function arrow(higherIsBetter) {
  return higherIsBetter === false ? "↓" : "↑";
}
