// The 2010 index page: /stats/ every few seconds, start and stop through /control/<queue>.
function cell(text) { const td = document.createElement("td"); td.textContent = String(text); return td; }

function control(queue, status) {
  const body = new URLSearchParams({status: status});
  fetch("/control/" + encodeURIComponent(queue), {method: "POST", body: body}).then(update);
}

function row(queue) {
  const tr = document.createElement("tr");
  tr.append(cell(queue.name), cell(queue.len), cell(queue.status === 1 ? "started" : "stopped"),
            cell(queue.policy === 2 ? "roundrobin" : "broadcast"));
  const td = document.createElement("td");
  for (const status of ["start", "stop"]) {
    const button = document.createElement("button");
    button.textContent = status;
    button.onclick = () => control(queue.name, status);
    td.append(button);
  }
  tr.append(td);
  return tr;
}

function update() {
  fetch("/stats/").then(reply => reply.json()).then(data => {
    document.getElementById("summary").textContent = "Queues: " + data.count + " · " + data.redis;
    const rows = Object.values(data.queues).map(row);
    document.getElementById("queues").replaceChildren(...rows);
  }).catch(error => { document.getElementById("summary").textContent = "/stats/: " + error; });
}

update();
setInterval(update, 3000);
