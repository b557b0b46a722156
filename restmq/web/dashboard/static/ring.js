// The ring panel of the dashboard (docs/scaling.md): each node's state, configured and effective weight,
// override, queues and messages, memory and latency, and the placement version, from GET /admin/ring every
// 5 seconds. Shown to admins of a ring only: any other answer (403, 409 for a single node) keeps it hidden.
import { api, el } from "./app.js";

const panel = document.getElementById("ring");
const EVERY_MS = 5000;

const mib = (bytes) => (bytes / 1048576).toFixed(1);

function render(view) {
  const head = el("tr", {}, ...["#", "node", "state", "weight", "configured", "override", "queues", "messages",
    "memory", "ping ms"].map((name) => el("th", { scope: "col" }, name)));
  const rows = view.nodes.map((n) => el("tr", {},
    el("td", {}, String(n.index)), el("td", {}, n.node), el("td", {}, n.state),
    el("td", { class: "num" }, String(n.weight)), el("td", { class: "num" }, String(n.configured)),
    el("td", { class: "num" }, n.override === null ? "" : String(n.override)),
    el("td", { class: "num" }, n.queues === null ? "–" : String(n.queues)),
    el("td", { class: "num" }, n.messages === null ? "–" : String(n.messages)),
    el("td", {}, n.capacity ? `${mib(n.capacity.used)} / ${mib(n.capacity.limit)} MiB` : "–"),
    el("td", { class: "num" }, n.capacity ? String(n.capacity.latency_ms) : "–")));
  const version = view.version === null ? "" : ` · version ${view.version} by ${view.computed_by}`;
  const caption = el("caption", {}, `Ring placement: ${view.placement}${version}`);
  const table = el("table", { class: "queues" }, caption, el("thead", {}, head), el("tbody", {}, ...rows));
  const parts = view.conflict ? [el("p", { class: "notice error" }, `Conflict: ${view.conflict}`), table] : [table];
  panel.replaceChildren(el("div", { class: "scroll" }, ...parts));
  panel.hidden = false;
}

async function refresh() {
  try {
    render(await api("/admin/ring"));
  } catch {
    panel.hidden = true; // not an admin, or not a ring
    return;
  }
  setTimeout(refresh, EVERY_MS);
}

if (panel) refresh();
