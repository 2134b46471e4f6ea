"use strict";
async function load() {
  const { sandboxes } = await (await fetch("/api/sandboxes")).json();
  const body = document.querySelector("#sandboxes tbody");
  body.replaceChildren(...sandboxes.map((s) => {
    const tr = document.createElement("tr");
    tr.innerHTML = `<td>${s.id}</td><td>${s.state}</td><td>${Math.round(s.ageSeconds)}s</td><td><a href="${s.previewUrl}">${s.previewUrl}</a></td><td><button>Delete</button></td>`;
    tr.querySelector("button").addEventListener("click", async () => { await fetch(`/api/sandboxes/${s.id}`, { method: "DELETE" }); load(); });
    return tr;
  }));
}
load();
