/**
 * Building DOM nodes without HTML strings: text always goes in as text nodes, so names and
 * messages that come from users (model names, submitters, error details) can never become markup.
 */

/**
 * An element: ``h("a", { href: "#", class: "x", text: "label" }, child, "more text")``.
 * Props: ``class``, ``text`` (textContent), ``dataset`` (an object), ``on<event>`` (a
 * listener), booleans (true: empty attribute, false/null/undefined: left out), anything else an
 * attribute.  Children: nodes or strings (strings become text nodes); null and false are skipped.
 */
export function h(tag, props = {}, ...children) {
  const el = document.createElement(tag);
  for (const [key, value] of Object.entries(props ?? {})) {
    if (value === null || value === undefined || value === false) continue;
    if (key === "class") el.className = value;
    else if (key === "text") el.textContent = String(value);
    else if (key === "dataset") Object.assign(el.dataset, value);
    else if (key.startsWith("on") && typeof value === "function") {
      el.addEventListener(key.slice(2), value);
    } else el.setAttribute(key, value === true ? "" : String(value));
  }
  append(el, children);
  return el;
}

function append(el, children) {
  for (const child of children) {
    if (child === null || child === undefined || child === false) continue;
    if (Array.isArray(child)) append(el, child);
    else el.append(child); // a string becomes a text node
  }
}

/** A labelled form field: ``<div class="field"><label for=id>…</label>control</div>``. */
export function field(label, control, { hint = "" } = {}) {
  const hintEl = hint ? h("span", { class: "hint", id: `${control.id}-hint`, text: hint }) : null;
  if (hintEl) control.setAttribute("aria-describedby", hintEl.id);
  return h("div", { class: "field" }, h("label", { for: control.id, text: label }), control, hintEl);
}
