// funnel serve: the define page's editor (save, then follow the background job) and its form.
// Only textContent is ever set from data: nothing the server or the user sends becomes markup.
"use strict";

function tomlString(s) {
  return '"' + s.replace(/\\/g, "\\\\").replace(/"/g, '\\"') + '"';
}

function fillEditor(form, editor) {
  const f = new FormData(form);
  const steps = String(f.get("steps") || "")
    .split("\n")
    .map((s) => s.trim())
    .filter((s) => s.length > 0)
    .map((s) => "  { event = " + tomlString(s) + " },");
  let toml = "[[funnel]]\nid = " + tomlString(String(f.get("id") || "")) + "\n";
  toml += "window = " + tomlString(String(f.get("window") || "7d")) + "\n";
  toml += "mode = " + tomlString(String(f.get("mode") || "ordered")) + "\n";
  const breakdown = String(f.get("breakdown") || "").trim();
  if (breakdown) toml += "breakdown = " + tomlString(breakdown) + "\n";
  toml += "steps = [\n" + steps.join("\n") + "\n]\n";
  editor.value = toml;
}

function showError(text, editor, line, column) {
  const box = document.getElementById("error");
  box.textContent = text;
  box.hidden = false;
  if (line && column) {
    // Put the caret where the error is.
    const lines = editor.value.split("\n");
    let offset = 0;
    for (let i = 0; i < line - 1 && i < lines.length; i++) offset += lines[i].length + 1;
    offset += column - 1;
    editor.focus();
    editor.setSelectionRange(offset, offset);
  }
}

// Each status shown is also kept in sessionStorage ("funnel-progress"), so the funnel page opened next
// can still tell what the computation went through.
async function follow(job, app) {
  const progress = document.getElementById("progress");
  const bar = document.getElementById("bar");
  const phase = document.getElementById("phase");
  const shown = [];
  progress.hidden = false;
  for (;;) {
    const r = await fetch("/api/jobs/" + encodeURIComponent(job.id), { credentials: "same-origin" });
    const s = await r.json();
    bar.value = s.progress || 0;
    phase.textContent = s.state + " — " + s.phase + " " + Math.round((s.progress || 0) * 100) + "%";
    progress.dataset.state = s.state;
    shown.push({ state: s.state, phase: s.phase, progress: s.progress || 0 });
    try {
      sessionStorage.setItem("funnel-progress", JSON.stringify(shown));
    } catch (e) {
      // Storage may be disabled: the bar above is what matters.
    }
    if (s.state === "done") {
      const id = s.funnels[0].id;
      window.location.href = "/funnels/" + encodeURIComponent(id) + "?app=" + encodeURIComponent(app);
      return;
    }
    if (s.state === "failed") {
      showError("the computation failed: " + s.error, document.getElementById("toml"));
      return;
    }
    await new Promise((done) => setTimeout(done, 200));
  }
}

async function save(event) {
  event.preventDefault();
  const form = event.target;
  const editor = document.getElementById("toml");
  const app = document.getElementById("app").value;
  document.getElementById("error").hidden = true;
  const r = await fetch("/api/funnels", {
    method: "POST",
    credentials: "same-origin",
    headers: { "Content-Type": "application/json" },
    body: JSON.stringify({ toml: editor.value, version: form.dataset.version }),
  });
  const body = await r.json().catch(() => ({ error: "HTTP " + r.status }));
  if (r.status !== 202) {
    let text = body.error || "HTTP " + r.status;
    if (r.status === 409) text += " (reload the page to see the current file)";
    showError(text, editor, body.line, body.column);
    return;
  }
  form.dataset.version = body.version;
  await follow(body.job, app);
}

document.addEventListener("DOMContentLoaded", () => {
  const define = document.getElementById("define");
  if (define) define.addEventListener("submit", save);
  const fill = document.getElementById("fill");
  if (fill) {
    fill.addEventListener("click", () =>
      fillEditor(document.getElementById("builder"), document.getElementById("toml")),
    );
  }
});
