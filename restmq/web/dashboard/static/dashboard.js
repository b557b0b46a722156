// The dashboard: one row per queue of the page shown, updated by the /stats/stream event stream (one event a
// second). Rates are computed here from the counters' deltas; each queue keeps 5 minutes of them for its
// sparkline. Pages follow the API's paging: `after` (the last queue of the previous page) and `limit`, kept in
// the address so that reloads, links and the browser's back button show the same page.
import {
  api, controls, el, newSpark, qpath, rate, say, setLive, setupToken, sparkline, waitingForToken, withToken,
} from "./app.js";

const POINTS = 300; // 5 minutes of one-second samples
const rows = document.getElementById("rows");
const queues = new Map(); // name -> {row, cells, spark, ctl, last, adds, delivers}
const totals = { last: null, adds: [], delivers: [] };
let source = null;
let connectionTrouble = false;
const address = new URLSearchParams(location.search);
// the page shown: `after` ("" for the first), the `after` of each earlier page (to go back), and the next one
const page = { after: address.get("after") || "", limit: address.get("limit") || "", trail: [], next: null };

const push = (list, value) => { list.push(value); if (list.length > POINTS) list.shift(); };
const text = (node, value) => { if (node.textContent !== String(value)) node.textContent = value; };

function entryFor(name) {
  let entry = queues.get(name);
  if (entry) return entry;
  const cell = (label, cls = "num") => el("td", { class: cls, "data-label": label });
  const cells = {
    length: cell("ready"), leased: cell("leased"), delayed: cell("delayed"), dead: cell("dead"),
    consumers: cell("consumers"), add: cell("add/s"), deliver: cell("deliver/s"), status: el("span"),
  };
  const spark = newSpark(`adds and deliveries per second of ${name}, last 5 minutes`);
  const ctl = controls(name);
  const row = el("tr", { "data-queue": name },
    el("td", { class: "queue wide", "data-label": "queue" }, el("a", { href: `/j/${qpath(name)}` }, name)),
    cells.length, cells.leased, cells.delayed, cells.dead, cells.consumers, cells.add, cells.deliver,
    el("td", { class: "wide", "data-label": "last 5 min" }, spark),
    el("td", { class: "half", "data-label": "policy" }, ctl.policy),
    el("td", { class: "half", "data-label": "status" }, el("div", { class: "actions" }, cells.status, ctl.status)),
    el("td", { class: "wide", "data-label": "actions" }, el("div", { class: "actions" }, ctl.purge, ctl.redrive)));
  entry = { row, cells, spark, ctl, last: null, adds: [], delivers: [] };
  queues.set(name, entry);
  return entry;
}

/** Append the rates since the previous sample of `state` (null on the first one). */
function rates(state, added, delivered, time) {
  const last = state.last;
  state.last = { added, delivered, time };
  if (!last || time <= last.time) return null;
  const seconds = (time - last.time) / 1000;
  const add = Math.max(0, (added - last.added) / seconds);
  const deliver = Math.max(0, (delivered - last.delivered) / seconds);
  push(state.adds, add);
  push(state.delivers, deliver);
  return { add, deliver };
}

function update(snapshot) {
  page.next = snapshot.next ?? null;
  const seen = new Set();
  const sum = { ready: 0, consumers: 0, added: 0, delivered: 0 };
  snapshot.queues.forEach((stats, index) => {
    const entry = entryFor(stats.queue);
    seen.add(stats.queue);
    for (const field of ["length", "leased", "delayed", "dead", "consumers"]) text(entry.cells[field], stats[field]);
    text(entry.cells.status, stats.status);
    entry.cells.status.className = `status-${stats.status}`;
    entry.ctl.update(stats);
    const now = rates(entry, stats.added, stats.delivered, snapshot.time);
    if (now) {
      text(entry.cells.add, rate(now.add));
      text(entry.cells.deliver, rate(now.deliver));
      sparkline(entry.spark, [entry.adds, entry.delivers], ["add", "deliver"]);
    } else {
      text(entry.cells.add, "–");
      text(entry.cells.deliver, "–");
    }
    if (rows.children[index] !== entry.row) rows.insertBefore(entry.row, rows.children[index] || null);
    sum.ready += stats.length;
    sum.consumers += stats.consumers;
    sum.added += stats.added;
    sum.delivered += stats.delivered;
  });
  for (const [name, entry] of queues) {
    if (!seen.has(name)) { entry.row.remove(); queues.delete(name); } // purged: gone from the listing
  }
  const current = new Set([...queues.values()].map((entry) => entry.row));
  for (const row of [...rows.children]) if (!current.has(row)) row.remove(); // the server's first paint
  if (!queues.size && (page.after || page.next)) {
    rows.append(el("tr", { class: "empty" }, el("td", { colspan: "12" }, "No queues you may see on this page.")));
  } else if (!queues.size) {
    rows.append(el("tr", { class: "empty" }, el("td", { colspan: "12" },
      "No queues yet. Add a message below, or with ", el("code", {}, `curl -d value=hello ${location.origin}/q/test`))));
  }
  showPager();
  const paged = Boolean(page.after || page.next);
  text(document.getElementById("t-queues-label"), paged ? "queues on this page" : "queues");
  text(document.getElementById("t-queues"), snapshot.count);
  text(document.getElementById("t-ready"), sum.ready);
  text(document.getElementById("t-consumers"), sum.consumers);
  const total = rates(totals, sum.added, sum.delivered, snapshot.time);
  if (total) {
    text(document.getElementById("t-add"), rate(total.add));
    text(document.getElementById("t-deliver"), rate(total.deliver));
    sparkline(document.getElementById("t-spark"), [totals.adds, totals.delivers], ["add", "deliver"]);
  }
}

/** The query of the page shown: after= and limit=, when set. */
function pageQuery(after = page.after) {
  const query = new URLSearchParams();
  if (after) query.set("after", after);
  if (page.limit) query.set("limit", page.limit);
  const text = query.toString();
  return text ? `?${text}` : "";
}

function showPager() {
  const prev = document.getElementById("page-prev");
  const next = document.getElementById("page-next");
  document.getElementById("pager").hidden = !page.after && !page.next;
  prev.hidden = !page.after;
  prev.href = location.pathname + pageQuery(page.trail.at(-1) ?? "");
  next.hidden = !page.next;
  if (page.next) next.href = location.pathname + pageQuery(page.next);
  text(document.getElementById("page-where"), page.after ? `after ${page.after}` : "first page");
}

/** Show the page after `after`; `push` records it in the browser's history. */
function turn(after, trail, push) {
  page.after = after;
  page.trail = trail;
  page.next = null;
  if (push) history.pushState({ after, trail }, "", location.pathname + pageQuery());
  for (const entry of queues.values()) entry.row.remove();
  queues.clear();
  Object.assign(totals, { last: null, adds: [], delivers: [] }); // the totals of another set of queues
  connect();
}

document.getElementById("page-next").addEventListener("click", (event) => {
  if (!page.next) return;
  event.preventDefault();
  turn(page.next, [...page.trail, page.after], true);
});
document.getElementById("page-prev").addEventListener("click", (event) => {
  event.preventDefault();
  turn(page.trail.at(-1) ?? "", page.trail.slice(0, -1), true);
});
window.addEventListener("popstate", (event) => {
  const state = event.state || { after: new URLSearchParams(location.search).get("after") || "", trail: [] };
  turn(state.after, state.trail, false);
});
history.replaceState({ after: page.after, trail: page.trail }, "");

function connect() {
  if (source) source.close();
  setLive("connecting…", "");
  source = new EventSource(withToken("/stats/stream" + pageQuery()));
  source.onopen = () => setLive("live", "on");
  source.onmessage = (event) => {
    if (connectionTrouble) { say(""); connectionTrouble = false; }
    setLive("live", "on");
    update(JSON.parse(event.data));
  };
  source.addEventListener("failure", (event) => {
    connectionTrouble = true;
    say(JSON.parse(event.data).error, "error");
  });
  source.onerror = () => {
    setLive("reconnecting…", "off");
    if (source.readyState === EventSource.CLOSED) probe(); // refused (401, 403, ...): find out why
  };
}

async function probe() {
  try {
    await api("/stats/" + pageQuery());
    setTimeout(connect, 1000);
  } catch (error) {
    connectionTrouble = true;
    setLive("not connected", "off");
    const hint = error.status === 401 ? " Paste a token above." : "";
    say(`${error.message}.${hint}`, "error");
    if (error.status !== 401 && error.status !== 403) setTimeout(connect, 5000);
  }
}

document.getElementById("add-form").addEventListener("submit", async (event) => {
  event.preventDefault();
  const queue = document.getElementById("add-queue").value.trim();
  const value = document.getElementById("add-value");
  try {
    const key = await api(`/q/${qpath(queue)}`, { method: "POST", form: { value: value.value } });
    say(`Added ${String(key).trim()}.`);
    value.value = "";
  } catch (error) {
    say(`Adding to ${queue} failed: ${error.message}`, "error");
  }
});

setupToken(connect);
if (waitingForToken()) setLive("waiting for a token", "off");
else connect();
