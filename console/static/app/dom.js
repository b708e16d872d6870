// A tiny element builder: text always goes in as text (never as HTML), so nothing an API
// answer holds can become markup.

export function h(tag, attrs = {}, ...children) {
  const el = document.createElement(tag);
  for (const [name, value] of Object.entries(attrs || {})) {
    if (value === false || value === null || value === undefined) continue;
    if (name.startsWith("on")) el.addEventListener(name.slice(2), value);
    else if (name === "class") el.className = value;
    else el.setAttribute(name, value === true ? "" : String(value));
  }
  for (const child of children.flat()) {
    if (child === null || child === undefined || child === false) continue;
    el.append(child instanceof Node ? child : String(child));
  }
  return el;
}

export function when(iso) {
  return new Date(iso).toLocaleString(undefined, { dateStyle: "medium", timeStyle: "short" });
}

export function percent(p) {
  return `${(p * 100).toFixed(p < 0.01 ? 2 : 1)}%`;
}

export function alertBox(message) {
  return h("p", { class: "alert", role: "alert" }, message);
}

// Replaces an element's content, leaving out the parts a screen did not need (null, false).
export function fill(el, ...parts) {
  el.replaceChildren(...parts.flat().filter((p) => p !== null && p !== undefined && p !== false));
}
