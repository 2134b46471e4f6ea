"use strict";
// Reads the SSE stream of a POST with fetch and a ReadableStream.
async function* sseEvents(response) {
  const reader = response.body.getReader();
  const decoder = new TextDecoder();
  let buffer = "";
  for (;;) {
    const { value, done } = await reader.read();
    if (done) return;
    buffer += decoder.decode(value, { stream: true });
    let cut;
    while ((cut = buffer.indexOf("\n\n")) >= 0) {
      const frame = buffer.slice(0, cut);
      buffer = buffer.slice(cut + 2);
      const data = frame.split("\n").filter((l) => l.startsWith("data:")).map((l) => l.slice(5).trim()).join("\n");
      if (data) yield JSON.parse(data);
    }
  }
}
const form = document.getElementById("generate");
const list = document.getElementById("events");
for (const b of document.querySelectorAll(".example")) b.addEventListener("click", () => { form.prompt.value = b.textContent; });
form.addEventListener("submit", async (e) => {
  e.preventDefault();
  list.replaceChildren();
  const body = {
    messages: [{ role: "user", content: form.prompt.value }],
    projectType: form.projectType.value,
    agents: [...form.querySelectorAll("input[name=agents]:checked")].map((i) => i.value),
  };
  const path = document.body.dataset.flow === "persistent" ? "/api/agent/stream" : "/api/agent/stream-daytona";
  const response = await fetch(path, { method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify(body) });
  if (!response.ok) { const err = await response.json(); list.append(Object.assign(document.createElement("li"), { textContent: err.error.message, className: "error" })); return; }
  for await (const ev of sseEvents(response)) {
    const li = document.createElement("li");
    li.textContent = ev.type === "progress" ? ev.data.message : ev.type === "tool" ? `${ev.data.action} ${ev.data.file}` : ev.type === "message" ? ev.data.content : ev.type === "complete" ? ev.data.message : ev.data.message;
    list.append(li);
    if (ev.type === "complete") {
      const url = ev.data.previewUrl + (ev.data.accessToken ? `?token=${ev.data.accessToken}` : "");
      document.getElementById("preview").hidden = false;
      Object.assign(document.getElementById("preview-link"), { href: url, textContent: url });
      document.getElementById("preview-frame").src = url;
    }
  }
});
