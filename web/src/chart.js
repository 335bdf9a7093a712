// Small line charts of a session's usage, drawn as SVG with DOM calls: CPU (% of one core,
// from the change of cpu_seconds between two samples of GET …/stats) and memory (bytes). No
// chart library: a polyline over a fixed window is all these need.
import { h, formatBytes } from "./dom.js";

const SVG = "http://www.w3.org/2000/svg";
const W = 300, H = 64;

function svgEl(tag, attrs) {
  const el = document.createElementNS(SVG, tag);
  for (const [k, v] of Object.entries(attrs)) el.setAttribute(k, String(v));
  return el;
}

// One chart: update(values, max) redraws; `format` turns a value into the text shown beside it.
function lineChart(title, format) {
  const line = svgEl("polyline", { fill: "none", stroke: "#b45309", "stroke-width": 2, "vector-effect": "non-scaling-stroke" });
  const area = svgEl("polygon", { fill: "#fde68a", opacity: 0.5 });
  const svg = svgEl("svg", { viewBox: `0 0 ${W} ${H}`, preserveAspectRatio: "none", role: "img", "aria-label": title });
  svg.append(area, line);
  const now = h("span", { class: "now muted" }, "measuring…");
  const el = h("figure", { class: "chart" }, h("h3", {}, title, " ", now), svg);
  el.style.margin = "0";
  return {
    el,
    update(values, max) {
      const top = Math.max(max || 0, ...values, 1e-9);
      // The first samples spread over the width; later ones scroll in from the right.
      const step = W / (Math.max(values.length, 20) - 1);
      const x0 = W - (values.length - 1) * step;
      const pts = values.map((v, i) => `${(x0 + i * step).toFixed(1)},${(H - (v / top) * (H - 4)).toFixed(1)}`);
      line.setAttribute("points", pts.join(" "));
      area.setAttribute("points", pts.length ? `${x0.toFixed(1)},${H} ${pts.join(" ")} ${W},${H}` : "");
      now.textContent = values.length ? format(values[values.length - 1]) : "";
      svg.setAttribute("aria-label", `${title}: ${now.textContent} now`);
    },
  };
}

const CAPACITY = 100;  // samples kept: five minutes at one every three seconds

// The usage charts of one session; add(stats) after each GET …/stats.
export function usageCharts() {
  const cpu = lineChart("CPU", (v) => `${v.toFixed(0)} %`);
  const mem = lineChart("Memory", (v) => formatBytes(v));
  const cpuValues = [], memValues = [];
  let last = null;
  const el = h("div", { class: "charts" }, cpu.el, mem.el);
  const push = (arr, v) => { arr.push(v); if (arr.length > CAPACITY) arr.shift(); };
  return {
    el,
    add(st) {
      const at = st.at ? Date.parse(st.at) : Date.now();
      if (last && st.cpu_seconds !== undefined && at > last.at) {
        push(cpuValues, Math.max(0, (100 * (st.cpu_seconds - last.cpu)) / ((at - last.at) / 1000)));
        // Idle sessions use a few percent: scaled to what was used, at least 10 % high.
        cpu.update(cpuValues, Math.max(10, ...cpuValues) * 1.2);
      }
      if (st.cpu_seconds !== undefined) last = { at, cpu: st.cpu_seconds };
      if (st.memory_bytes !== undefined) {
        push(memValues, st.memory_bytes);
        // Scaled to what it used (a limit of gigabytes would flatten the line).
        mem.update(memValues, Math.max(...memValues) * 1.2);
      }
    },
  };
}
