// The dashboard's push panel (docs/push.md): GET /push/ every 2 seconds, one row per subscription with its
// delivery state. Hidden while the server pushes nothing; a refusal (no admin right) hides it too.
import { api, el, qpath, waitingForToken } from "./app.js";

const panel = document.getElementById("push");
const rows = document.getElementById("push-rows");

function row(sub) {
  const state = sub.paused ? "paused (410)" : sub.failing ? `failing ×${sub.failing}` : "active";
  const cell = (label, value, cls = "num") => el("td", { class: cls, "data-label": label }, String(value));
  return el("tr", { "data-queue": sub.queue, class: sub.paused || sub.failing ? "warn" : "" },
    el("td", { class: "queue wide", "data-label": "queue" }, el("a", { href: `/j/${qpath(sub.queue)}` }, sub.queue)),
    cell("target", sub.url, "wide"), cell("state", state, "half"),
    cell("delivered", sub.delivered), cell("failed", sub.failed), cell("retrying", sub.retrying),
    cell("in flight", sub.in_flight), cell("dead", sub.dead), cell("last status", sub.last_status ?? "–"),
    cell("last error", sub.last_error || "–", "wide"));
}

async function refresh() {
  if (waitingForToken()) return;
  try {
    const listed = await api("/push/");
    panel.hidden = !listed.enabled && listed.subscriptions.length === 0;
    rows.replaceChildren(...listed.subscriptions.map(row));
  } catch {
    panel.hidden = true;
  }
}

refresh();
setInterval(refresh, 2000);
