// The queue page (/j/<queue>): the newest waiting messages read every second through /peek (which takes
// nothing), a form to add, the queue's controls, and an opt-in live consumer over Server-Sent Events.
import { api, controls, el, qpath, say, setLive, setupToken, waitingForToken, withToken } from "./app.js";

const queue = decodeURIComponent(location.pathname.replace(/^\/j\//, ""));
const limit = new URLSearchParams(location.search).get("limit") || "20";
const rows = document.getElementById("rows");
const summary = document.getElementById("summary");
const liveView = document.getElementById("live-view");
const consume = document.getElementById("consume");
const consumed = document.getElementById("consumed");
const ctl = controls(queue);
const shown = new Map(); // key -> its row, so rows that stay are never rebuilt (their highlight keeps running)
// The server paints the first view (web/ui.py): its rows are what the reader has seen, and a message added before
// this script's first read is new. Without that paint (a token needed), the first read highlights nothing.
for (const row of rows.querySelectorAll("tr[data-key]")) shown.set(row.dataset.key, row);
let first = summary.textContent.trim() === "";
let timer = null;
let reading = false;
let trouble = false;
let stream = null;

document.title = `${queue} · RestMQ`;
document.getElementById("queue-name").textContent = queue;
document.getElementById("controls").append(ctl.status, ctl.policy, ctl.purge, ctl.redrive);

function summarize(stats) {
  const parts = [];
  for (const [label, field] of [["ready", "length"], ["leased", "leased"], ["delayed", "delayed"], ["dead", "dead"],
    ["consumers", "consumers"]]) {
    parts.push(`${parts.length ? " · " : ""}${label} `, el("b", {}, String(stats[field])));
  }
  parts.push(` · policy ${stats.policy} · status `, el("span", { class: `status-${stats.status}` }, stats.status),
    ` · added ${stats.added} · delivered ${stats.delivered}`);
  summary.replaceChildren(...parts);
}

function show(messages, truncated) {
  const keep = new Set(messages.map((m) => m.key));
  for (const [key, row] of shown) if (!keep.has(key)) { row.remove(); shown.delete(key); }
  messages.forEach((message, index) => {
    let row = shown.get(message.key);
    if (!row) {
      row = el("tr", { "data-key": message.key, class: first ? null : "new" },
        el("td", {}, el("code", {}, message.key)), el("td", { class: "num" }, String(message.count)),
        el("td", {}, el("pre", {}, message.value)));
      shown.set(message.key, row);
    } else {
      row.children[1].textContent = String(message.count);
    }
    if (rows.children[index] !== row) rows.insertBefore(row, rows.children[index] || null);
  });
  for (const row of [...rows.children]) if (shown.get(row.dataset.key) !== row) row.remove(); // the first paint
  if (!messages.length) rows.append(el("tr", { class: "empty" }, el("td", { colspan: "3" }, "no waiting messages")));
  if (truncated) {
    rows.append(el("tr", { class: "empty" }, el("td", { colspan: "3" },
      "Older messages are not shown: this view holds at most --max-peek-bytes of messages.")));
  }
  first = false;
}

async function read() {
  clearTimeout(timer);
  if (reading) return;
  reading = true;
  try {
    const data = await api(`/peek/${qpath(queue)}?limit=${encodeURIComponent(limit)}`);
    if (trouble) { say(""); trouble = false; }
    setLive(liveView.checked ? "live" : "paused", liveView.checked ? "on" : "");
    summarize(data.stats);
    ctl.update(data.stats);
    show(data.messages, data.truncated);
  } catch (error) {
    trouble = true;
    setLive("not connected", "off");
    say(`${error.message}.${error.status === 401 ? " Paste a token above." : ""}`, "error");
  } finally {
    reading = false;
  }
  if (liveView.checked) timer = setTimeout(read, 1000);
}

liveView.addEventListener("change", read);

document.getElementById("add-form").addEventListener("submit", async (event) => {
  event.preventDefault();
  const form = new FormData(event.target);
  for (const [name, value] of [...form]) if (value === "") form.delete(name); // optional fields left empty
  try {
    const key = await api(`/q/${qpath(queue)}`, { method: "POST", form });
    say(`Added ${String(key).trim()}.`);
    event.target.reset();
    read();
  } catch (error) {
    say(`Adding failed: ${error.message}`, "error");
  }
});

function startConsuming() {
  stream = new EventSource(withToken(`/sse/${qpath(queue)}`));
  stream.onmessage = (event) => {
    const message = JSON.parse(event.data);
    consumed.prepend(el("li", {}, el("code", {}, message.key), message.value));
    while (consumed.children.length > 100) consumed.lastChild.remove();
  };
  stream.onerror = () => {
    if (stream && stream.readyState === EventSource.CLOSED) {
      say("The live consumer was refused or closed by the server.", "error");
      consume.checked = false;
      stream = null;
    }
  };
  say("Consuming live: the messages listed under “Consume live” were taken from the queue.");
}

consume.addEventListener("change", () => {
  if (consume.checked) return startConsuming();
  if (stream) stream.close();
  stream = null;
  say("Stopped consuming.");
});

setupToken(read);
if (waitingForToken()) setLive("waiting for a token", "off");
else read();
