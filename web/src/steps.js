// A workshop's scenario or course (docs/workshops.md, "Scenarios and courses"). For a
// participant: the current step's instructions, a Check button with the check's output, and a
// Next button. For the instructor: each participant's progress.
//
// Step texts are markdown written by an instructor and shown to every participant on the
// console's origin, so they are rendered by `marked` and then sanitised by DOMPurify before they
// touch the DOM; the CSP forbids inline script besides. Everything else goes in as text nodes.
import { marked } from "marked";
import DOMPurify from "dompurify";
import { call, ApiError } from "./api.js";
import { h, mount, notice } from "./dom.js";
import { duration } from "./workshops.js";

export function renderMarkdown(text) {
  const html = marked.parse(String(text ?? ""), { async: false, gfm: true });
  const el = h("div", { class: "markdown" });
  el.innerHTML = DOMPurify.sanitize(html, { USE_PROFILES: { html: true } });
  // Links open apart from the console, without a handle back to it.
  for (const a of el.querySelectorAll("a[href]")) {
    a.target = "_blank";
    a.rel = "noopener noreferrer";
  }
  return el;
}

// The participant's step. load() reads it (hidden for a workshop that runs no scenario).
export function stepPanel() {
  const title = h("h2", { id: "step-title" }, "Your step");
  const where = h("span", { class: "muted step-where" });
  const text = h("div", { class: "step-text" });
  const result = h("div", { class: "check-result", "aria-live": "polite" });
  const checkBtn = h("button", { type: "button", class: "primary", id: "step-check" }, "Check");
  const nextBtn = h("button", { type: "button", id: "step-next" }, "Next step");
  const el = h("section", { class: "card section steps", "aria-labelledby": "step-title", hidden: true },
    h("div", { class: "row" }, title, h("span", { class: "spacer" }), where), text,
    h("div", { class: "actions" }, checkBtn, nextBtn), result);
  let progress = null;
  let supported = true;
  let shown = "";  // the step on screen: re-rendered only when it changes, so reading is not disturbed

  function render() {
    const p = progress;
    el.hidden = false;
    if (p.finished) {
      title.textContent = "All done";
      mount(where, `${p.checks_passed} of ${p.total_steps} checks passed`);
      mount(text, h("p", {}, "You have finished every step of this workshop."));
      checkBtn.hidden = nextBtn.hidden = true;
      shown = "finished";
      return;
    }
    const key = `${p.scenario.index}/${p.step.index}`;
    mount(where, `${p.scenario.title || p.scenario.name} · step ${p.step.index + 1} of ${p.step.count}`);
    checkBtn.hidden = !p.step.has_check;
    nextBtn.hidden = false;
    nextBtn.disabled = p.step.has_check && !p.step.passed;
    if (key === shown) return;
    shown = key;
    title.textContent = p.step.title;
    mount(text, renderMarkdown(p.step.text));
    mount(result);
  }

  async function load() {
    if (!supported) return;
    try {
      progress = await call("GET", "/v1/me/workshop/progress");
      render();
    } catch (e) {
      // 404: no scenario in this workshop (or a server without them): no panel at all.
      if (e instanceof ApiError && e.status === 404) { supported = false; el.hidden = true; return; }
      mount(result, notice("error", e.message));
    }
  }

  async function act(button, fn) {
    button.disabled = true;
    try { await fn(); } catch (e) { mount(result, notice("error", e.message)); }
    finally { button.disabled = false; if (progress) render(); }
  }

  checkBtn.addEventListener("click", () => act(checkBtn, async () => {
    mount(result, notice("info", "Checking…"));
    const r = await call("POST", "/v1/me/workshop/check");
    mount(result, notice(r.passed ? "success" : "error",
                         r.passed ? `Check passed (attempt ${r.attempts}).` : `Check failed (attempt ${r.attempts}): fix it and check again.`),
          r.output ? h("pre", { class: "check-output", "aria-label": "Output of the check" }, r.output) : null);
    await load();
  }));
  nextBtn.addEventListener("click", () => act(nextBtn, async () => {
    progress = await call("POST", "/v1/me/workshop/next");
    render();
  }));

  return { el, load };
}

// The instructor's view of everyone's progress; hidden for a workshop that runs no scenario.
export function progressSection(id) {
  const body = h("div");
  const heading = h("h2", { id: "progress-title" }, "Progress");
  const el = h("section", { class: "card section", "aria-labelledby": "progress-title", hidden: true }, heading, body);
  let supported = true;

  async function load() {
    if (!supported) return;
    try {
      const r = await call("GET", `/v1/workshops/${encodeURIComponent(id)}/progress`);
      el.hidden = false;
      mount(heading, `Progress: ${r.plan.title || r.plan.name} (${r.plan.kind}, ${r.plan.total_steps} steps)`);
      const rows = r.participants.map((p) => {
        const pr = p.progress;
        const step = !pr ? "not started" : pr.finished ? "finished"
          : `${pr.scenario.name}: ${pr.step.index + 1}/${pr.step.count} ${pr.step.title}`;
        return h("tr", { dataset: { participant: p.id } },
          h("td", {}, p.name), h("td", {}, step),
          h("td", { class: "num" }, pr ? `${pr.checks_passed}/${r.plan.total_steps}` : "–"),
          h("td", { class: "num" }, pr ? String(pr.step.attempts) : "–"),
          h("td", { class: "num" }, pr && !pr.finished ? duration(pr.step.seconds) : "–"));
      });
      mount(body, rows.length
        ? h("div", { class: "table-wrap" }, h("table", { class: "progress" },
            h("caption", { class: "sr-only" }, "Each participant's progress"),
            h("thead", {}, h("tr", {}, ["Name", "Step", "Checks passed", "Attempts", "On this step"].map((t) => h("th", { scope: "col" }, t)))),
            h("tbody", {}, rows)))
        : h("p", { class: "empty" }, "No participants yet."));
    } catch (e) {
      if (e instanceof ApiError && e.status === 404) { supported = false; el.hidden = true; return; }
      mount(body, notice("error", e.message));
    }
  }
  return { el, load };
}
