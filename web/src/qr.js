// A QR code as an SVG element, drawn from qrcode-generator's module matrix with DOM calls (no
// markup strings): a phone's camera reads the join link off the projector.
import qrcode from "qrcode-generator";

const SVG = "http://www.w3.org/2000/svg";

export function qrSvg(text, label, size = 200) {
  const qr = qrcode(0, "M");  // 0: the smallest version that holds the text
  qr.addData(text);
  qr.make();
  const n = qr.getModuleCount();
  const quiet = 4;  // the white border scanners need, in modules
  const svg = document.createElementNS(SVG, "svg");
  svg.setAttribute("viewBox", `0 0 ${n + 2 * quiet} ${n + 2 * quiet}`);
  svg.setAttribute("width", String(size));
  svg.setAttribute("height", String(size));
  svg.setAttribute("role", "img");
  svg.setAttribute("shape-rendering", "crispEdges");
  const title = document.createElementNS(SVG, "title");
  title.textContent = label;
  svg.append(title);
  svg.setAttribute("aria-label", label);
  const bg = document.createElementNS(SVG, "rect");
  for (const [k, v] of [["width", "100%"], ["height", "100%"], ["fill", "#fff"]]) bg.setAttribute(k, v);
  svg.append(bg);
  // One path for all dark modules: a few thousand rects would be slow to lay out.
  let d = "";
  for (let r = 0; r < n; r++) {
    for (let c = 0; c < n; c++) if (qr.isDark(r, c)) d += `M${c + quiet} ${r + quiet}h1v1h-1z`;
  }
  const path = document.createElementNS(SVG, "path");
  path.setAttribute("d", d);
  path.setAttribute("fill", "#000");
  svg.append(path);
  svg.classList.add("qr");
  return svg;
}
