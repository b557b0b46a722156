// The dashboard's schedules panel: the schedules the caller's token covers (GET /schedules, read every 5 s while
// the page is visible), each with its rule, next tick, last tick published and its message key, and a pause or
// resume button (admin right on its queue). Times are shown in the browser's time zone.
import { api, el, say } from "./app.js";

const PERIOD = 5000;
const body = document.getElementById("schedule-rows");
const when = (ms) => (ms === null || ms === undefined ? "–" : new Date(ms).toLocaleString());
const rule = (s) => (s.every !== null ? `every ${s.every} s` : `${s.cron} (${s.tz})`);

function row(s) {
  const toggle = el("button", {
    type: "button",
    onclick: async () => {
      try {
        await api(`/schedules/${s.id}/${s.paused ? "resume" : "pause"}`, { method: "POST" });
        say(`${s.paused ? "Resumed" : "Paused"} ${s.id}.`);
        refresh();
      } catch (error) {
        say(`Changing ${s.id} failed: ${error.message}`, "error");
      }
    },
  }, s.paused ? "resume" : "pause");
  const last = s.fired ? `${when(s.last_tick_ms)} · ${s.last_key}` : "never";
  const cell = (label, value, attrs = {}) => el("td", { "data-label": label, ...attrs }, value);
  return el("tr", { "data-schedule": s.id },
    cell("queue", s.queue), cell("rule", rule(s)), cell("next tick", s.paused ? "paused" : when(s.next_tick_ms)),
    cell("last fired", last), cell("fired", String(s.fired), { class: "num" }), cell("paused", s.paused ? "yes" : "no"),
    cell("actions", toggle));
}

async function refresh() {
  if (document.hidden) return;
  try {
    const listed = await api("/schedules");
    const rows = listed.schedules.map(row);
    body.replaceChildren(...(rows.length ? rows : [el("tr", { class: "empty" }, el("td", { colspan: 7 }, "No schedules."))]));
  } catch (error) {
    if (error.status !== 401 && error.status !== 403) say(`Schedules: ${error.message}`, "error");
  }
}

refresh();
setInterval(refresh, PERIOD);
document.addEventListener("visibilitychange", refresh);
