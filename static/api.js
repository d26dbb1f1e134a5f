/** The API client: same-origin relative URLs, path encoding, a memo of responses, readable errors. */

/** A request that failed: network, HTTP status or a body that is not JSON. */
export class ApiError extends Error {
  constructor(message, { status = 0, url = "" } = {}) {
    super(message);
    this.name = "ApiError";
    this.status = status;
    this.url = url;
  }
}

/** A name as a URL path: every part encoded, `/` kept (names like org/model stay readable). */
export function pathName(name) {
  return String(name).split("/").map(encodeURIComponent).join("/");
}

/** Languages as typed ("eng, fra") to the canonical comma list ("eng,fra"). */
export function normLanguages(text) {
  return String(text ?? "")
    .split(",")
    .map((s) => s.trim())
    .filter(Boolean)
    .join(",");
}

function withLanguages(url, languages) {
  const langs = normLanguages(languages);
  return langs ? `${url}?languages=${encodeURIComponent(langs).replace(/%2C/g, ",")}` : url;
}

export const urls = {
  ready: () => "ready",
  benchmarks: () => "v1/benchmarks",
  menu: () => "v1/benchmarks/menu",
  benchmark: (name) => `v1/benchmarks/${pathName(name)}`,
  scores: (name, languages) => withLanguages(`v1/benchmarks/${pathName(name)}/scores`, languages),
  csv: (name, languages) => withLanguages(`v1/benchmarks/${pathName(name)}/scores.csv`, languages),
  model: (name) => `v1/models/${pathName(name)}/scores`,
  task: (name) => `v1/tasks/${pathName(name)}/scores`,
};

const memo = new Map();

async function problemText(res) {
  try {
    const body = await res.json();
    return [body.title, body.detail].filter(Boolean).join(": ");
  } catch {
    return "";
  }
}

async function load(url) {
  let res;
  try {
    res = await fetch(url, { headers: { accept: "application/json" } });
  } catch (err) {
    throw new ApiError(`Network error: ${err.message}`, { url });
  }
  if (!res.ok) {
    const detail = await problemText(res);
    const msg = `HTTP ${res.status}${detail ? ` – ${detail}` : ` ${res.statusText}`}`;
    throw new ApiError(msg, { status: res.status, url });
  }
  let data;
  try {
    data = await res.json();
  } catch {
    throw new ApiError("The response was not valid JSON", { status: res.status, url });
  }
  return { data, lastModified: res.headers.get("last-modified") };
}

/**
 * GET a JSON document once: concurrent and later callers share the result.
 * A failure is forgotten so that a retry asks again.
 * @returns {Promise<{data: any, lastModified: string|null}>}
 */
export function getJson(url) {
  let pending = memo.get(url);
  if (!pending) {
    pending = load(url);
    memo.set(url, pending);
    pending.catch(() => memo.delete(url));
  }
  return pending;
}
