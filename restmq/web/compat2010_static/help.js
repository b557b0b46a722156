document.getElementById("command").onsubmit = event => {
  event.preventDefault();
  const body = new URLSearchParams({body: document.getElementById("body").value});
  fetch("/queue", {method: "POST", body: body})
    .then(reply => reply.text().then(text => reply.status + "\n" + text))
    .then(text => { document.getElementById("reply").textContent = text; });
};
