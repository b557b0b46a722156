// Shared by the dashboard pages: the token, calls to the JSON API, queue actions, sparklines.
// The pages use the same HTTP API as any other client (see docs/dashboard.md).

const TOKEN_KEY = "restmq.token";

export const token = () => localStorage.getItem(TOKEN_KEY) || "";

/** True when the server sent this page without data because it needs credentials, and none is stored yet:
 * then the page waits for a token instead of calling the API (each refusal could make the browser ask for a
 * password). */
export const waitingForToken = () => !token() && document.getElementById("notice").textContent.trim() !== "";

/** Fill the header's token field and call onChange after the user saves a new one. */
export function setupToken(onChange) {
  const form = document.getElementById("token-form");
  const field = document.getElementById("token");
  field.value = token();
  form.addEventListener("submit", (event) => {
    event.preventDefault();
    const value = field.value.trim();
    if (value) localStorage.setItem(TOKEN_KEY, value);
    else localStorage.removeItem(TOKEN_KEY);
    say(value ? "Token saved in this browser." : "Token removed.");
    onChange();
  });
}

/** A URL for EventSource and WebSocket, which cannot send headers: the token goes in the query. */
export function withToken(path) {
  const value = token();
  if (!value) return path;
  return path + (path.includes("?") ? "&" : "?") + "token=" + encodeURIComponent(value);
}

/** Call the API; resolves to the decoded JSON (or text), rejects with the server's error text. */
export async function api(path, { method = "GET", form } = {}) {
  const headers = {};
  if (token()) headers.Authorization = "Bearer " + token();
  const init = { method, headers, cache: "no-store" };
  if (form) init.body = new URLSearchParams(form);
  const response = await fetch(path, init);
  const text = await response.text();
  let data = text;
  try { data = text ? JSON.parse(text) : null; } catch { /* plain text, e.g. the key of an add */ }
  if (!response.ok) {
    const error = new Error((data && data.error) || `${response.status} ${response.statusText}`);
    error.status = response.status;
    throw error;
  }
  return data;
}

/** A queue name in a path: encoded, but keeping the readable ':' and '@'. */
export const qpath = (queue) => encodeURIComponent(queue).replace(/%3A/gi, ":").replace(/%40/g, "@");

/** Show a message in the page's notice (kind "error" or "info"); an empty text hides it. */
export function say(text, kind = "info") {
  const notice = document.getElementById("notice");
  notice.textContent = text;
  notice.className = "notice" + (kind === "error" ? " error" : "");
}

export function setLive(text, state) {
  const live = document.getElementById("live");
  live.textContent = text;
  live.className = "live " + state;
}

/** document.createElement with attributes (on* keys become listeners) and children. */
export function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [name, value] of Object.entries(attrs)) {
    if (name.startsWith("on")) node.addEventListener(name.slice(2), value);
    else if (value !== undefined && value !== null && value !== false) node.setAttribute(name, value);
  }
  node.append(...children);
  return node;
}

// -- queue actions --------------------------------------------------------------------------

async function act(what, call) {
  try {
    await call();
    say(what);
  } catch (error) {
    say(`${what} failed: ${error.message}`, "error");
  }
}

export const setStatus = (queue, status) =>
  act(`${queue}: ${status === "stop" ? "stopped" : "started"}.`,
    () => api(`/control/${qpath(queue)}`, { method: "POST", form: { status } }));

export const setPolicy = (queue, policy) =>
  act(`${queue}: policy ${policy}.`, () => api(`/p/${qpath(queue)}`, { method: "POST", form: { policy } }));

export function purge(queue, waiting) {
  if (!confirm(`Purge ${queue}? Its ${waiting} waiting, delayed and leased messages are removed for good.`)) return;
  return act(`${queue}: purged.`, () => api(`/q/${qpath(queue)}`, { method: "DELETE" }));
}

export function redrive(queue) {
  const dead = queue.endsWith(":dead") ? queue : `${queue}:dead`;
  return act(`${dead}: dead letters moved back.`, () => api(`/q/${qpath(dead)}/redrive`, { method: "POST" }));
}

/** The controls of one queue: buttons and a select to place, and update(stats) to keep them current. */
export function controls(queue) {
  const status = el("button", { type: "button", onclick: () => setStatus(queue, status.dataset.next) });
  const policy = el("select", { "aria-label": `Policy of ${queue}`, onchange: () => setPolicy(queue, policy.value) },
    el("option", { value: "broadcast" }, "broadcast"), el("option", { value: "roundrobin" }, "roundrobin"));
  let waiting = 0;
  const purgeButton = el("button", { type: "button", class: "danger", "aria-label": `Purge ${queue}`,
    onclick: () => purge(queue, waiting) }, "Purge");
  const redriveButton = el("button", { type: "button", "aria-label": `Redrive the dead letters of ${queue}`,
    onclick: () => redrive(queue) }, "Redrive");
  function update(stats) {
    const next = stats.status === "stop" ? "start" : "stop";
    status.dataset.next = next;
    status.textContent = next === "stop" ? "Stop" : "Start";
    status.setAttribute("aria-label", `${status.textContent} ${queue}`);
    if (document.activeElement !== policy) policy.value = stats.policy;
    waiting = stats.length + stats.delayed + stats.leased;
    redriveButton.disabled = queue.endsWith(":dead") ? stats.length === 0 : stats.dead === 0;
  }
  return { status, policy, purge: purgeButton, redrive: redriveButton, update };
}

// -- sparklines -------------------------------------------------------------------------------

const SVG = "http://www.w3.org/2000/svg";

/** Draw series (arrays of numbers, newest last) as polylines in an inline SVG. The x axis spans at least
 * a minute of samples, so a young page draws from the left instead of squeezing everything to the right. */
export function sparkline(svg, series, classes) {
  const { width, height } = svg.viewBox.baseVal;
  const top = Math.max(1, ...series.flat());
  const span = Math.max(60, ...series.map((values) => values.length)) - 1;
  svg.replaceChildren(...series.map((values, i) => {
    const line = document.createElementNS(SVG, "polyline");
    const x = (j) => (j / span * width).toFixed(1);
    const y = (v) => (height - 2 - v / top * (height - 4)).toFixed(1);
    line.setAttribute("points", values.map((v, j) => `${x(j)},${y(v)}`).join(" "));
    line.setAttribute("class", classes[i]);
    return line;
  }));
}

export function newSpark(label) {
  const svg = document.createElementNS(SVG, "svg");
  svg.setAttribute("viewBox", "0 0 120 28");
  svg.setAttribute("preserveAspectRatio", "none");
  svg.setAttribute("class", "spark");
  svg.setAttribute("role", "img");
  svg.setAttribute("aria-label", label);
  return svg;
}

export const rate = (value) => (value >= 100 ? value.toFixed(0) : value >= 10 ? value.toFixed(1) : value.toFixed(2));
