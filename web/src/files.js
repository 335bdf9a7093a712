// The file browser: a directory listing with navigation, upload (picker or drag-and-drop, with
// progress), download, new folder, rename and delete — over /v1/sessions/{id}/files.
import { call, upload, sessionPath, query, withOwner } from "./api.js";
import { h, mount, notice, formatBytes, formatTime } from "./dom.js";

function join(dir, name) { return dir === "/" ? `/${name}` : `${dir}/${name}`; }
function parent(path) {
  const i = path.lastIndexOf("/");
  return i <= 0 ? "/" : path.slice(0, i);
}

export function filesPanel(sessionId) {
  let cwd = "/root";
  const pathInput = h("input", { name: "path", id: "files-path", "aria-label": "Directory", value: cwd, spellcheck: "false" });
  const status = h("div", { class: "files-status", "aria-live": "polite" });
  const uploads = h("ul", { class: "uploads", "aria-label": "Uploads" });
  const tbody = h("tbody");
  const picker = h("input", { type: "file", multiple: true, id: "files-upload", class: "sr-only" });
  const drop = h("section", { class: "files", "aria-label": "Files" });

  async function list(path) {
    mount(status);
    try {
      const r = await call("GET", sessionPath(sessionId, "/files") + query({ path }));
      if (!r || !Array.isArray(r.entries)) {
        mount(status, notice("error", `${path} is a file, not a directory`));
        return;
      }
      cwd = r.path || path;
      pathInput.value = cwd;
      const entries = [...r.entries].sort((a, b) =>
        (a.type === "directory" ? 0 : 1) - (b.type === "directory" ? 0 : 1) || a.name.localeCompare(b.name));
      mount(tbody,
        cwd !== "/" ? h("tr", {}, h("td", { colspan: 5 },
          h("button", { type: "button", class: "link", onclick: () => list(parent(cwd)) }, "⬑ .. (up)"))) : null,
        entries.map(row));
      if (r.truncated) mount(status, notice("info", "The listing was cut short (too many entries)."));
    } catch (e) {
      mount(status, notice("error", e.message));
    }
  }

  function row(e) {
    const path = e.path || join(cwd, e.name);
    const isDir = e.type === "directory";
    const nameCell = isDir
      ? h("button", { type: "button", class: "link", onclick: () => list(path) }, `${e.name}/`)
      : h("span", {}, e.name, e.type === "symlink" && e.target ? h("span", { class: "muted" }, ` → ${e.target}`) : null);
    const actions = h("td", { class: "row-actions" },
      isDir ? null : h("a", { class: "button small", href: withOwner(sessionPath(sessionId, "/files") + query({ path })),
                              download: e.name, "aria-label": `Download ${e.name}` }, "Download"),
      h("button", { type: "button", class: "small", "aria-label": `Rename ${e.name}`, onclick: () => rename(path, e.name) }, "Rename"),
      h("button", { type: "button", class: "small danger", "aria-label": `Delete ${e.name}`, onclick: () => remove(path, isDir) }, "Delete"));
    return h("tr", {}, h("td", {}, nameCell), h("td", { class: "num" }, isDir ? "" : formatBytes(e.size)),
             h("td", { class: "mono" }, e.mode || ""), h("td", {}, formatTime(e.mtime)), actions);
  }

  async function rename(path, name) {
    const to = prompt(`Rename ${name} to:`, name);
    if (!to || to === name) return;
    try {
      await call("POST", sessionPath(sessionId, "/files/move"), { from: path, to: to.startsWith("/") ? to : join(cwd, to) });
      list(cwd);
    } catch (e) { mount(status, notice("error", e.message)); }
  }

  async function remove(path, isDir) {
    if (!confirm(`Delete ${path}${isDir ? " and everything in it" : ""}?`)) return;
    try {
      await call("DELETE", sessionPath(sessionId, "/files") + query({ path, recursive: isDir ? "true" : "" }));
      list(cwd);
    } catch (e) { mount(status, notice("error", e.message)); }
  }

  async function mkdir() {
    const name = prompt("New folder name:");
    if (!name) return;
    try {
      await call("POST", sessionPath(sessionId, "/files/mkdir"), { path: name.startsWith("/") ? name : join(cwd, name) });
      list(cwd);
    } catch (e) { mount(status, notice("error", e.message)); }
  }

  async function send(files) {
    const dir = cwd;
    await Promise.all([...files].map(async (file) => {
      const bar = h("progress", { max: 100, value: 0, "aria-label": `Upload of ${file.name}` });
      const text = h("span", { class: "muted" }, "0%");
      const item = h("li", {}, h("span", { class: "upload-name" }, file.name), bar, text);
      uploads.append(item);
      try {
        await upload(sessionPath(sessionId, "/files") + query({ path: join(dir, file.name), parents: "true" }), file,
          (loaded, total) => {
            const pct = total ? Math.round((loaded / total) * 100) : 100;
            bar.value = pct;
            text.textContent = `${pct}% of ${formatBytes(total)}`;
          });
        bar.value = 100;
        text.textContent = `uploaded ${formatBytes(file.size)}`;
        item.classList.add("done");
      } catch (e) {
        text.textContent = "";
        item.append(notice("error", e.message));
      }
    }));
    if (dir === cwd) list(cwd);
  }

  picker.addEventListener("change", () => { send(picker.files); picker.value = ""; });
  drop.addEventListener("dragover", (ev) => { ev.preventDefault(); drop.classList.add("dragging"); });
  drop.addEventListener("dragleave", () => drop.classList.remove("dragging"));
  drop.addEventListener("drop", (ev) => {
    ev.preventDefault();
    drop.classList.remove("dragging");
    if (ev.dataTransfer?.files?.length) send(ev.dataTransfer.files);
  });

  mount(drop,
    h("form", { class: "files-bar", onsubmit: (ev) => { ev.preventDefault(); list(pathInput.value.trim() || "/"); } },
      h("button", { type: "button", "aria-label": "Parent directory", onclick: () => list(parent(cwd)) }, "Up"),
      pathInput, h("button", { type: "submit" }, "Go"),
      h("button", { type: "button", onclick: () => list(cwd) }, "Refresh"),
      h("button", { type: "button", onclick: mkdir }, "New folder"),
      h("label", { class: "button primary", for: "files-upload" }, "Upload files…"), picker),
    h("p", { class: "hint" }, "Drop files here to upload them into the directory shown."),
    uploads, status,
    h("div", { class: "table-wrap" }, h("table", { class: "files-table" },
      h("caption", { class: "sr-only" }, "Directory listing"),
      h("thead", {}, h("tr", {}, ["Name", "Size", "Mode", "Modified", "Actions"].map((t) => h("th", { scope: "col" }, t)))),
      tbody)));

  let shown = false;
  return { el: drop, show() { if (!shown) { shown = true; list(cwd); } }, close() {} };
}
