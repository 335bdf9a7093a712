// Creating a session: from an image or a template, with resources, labels and a lifetime.
import { call, ApiError } from "./api.js";
import { h, mount, field, notice } from "./dom.js";

// "a=1\nb=2" or "a=1, b=2" → {a: "1", b: "2"}; throws naming the bad entry.
export function parseLabels(textValue) {
  const out = {};
  for (const part of textValue.split(/[\n,]/).map((s) => s.trim()).filter(Boolean)) {
    const eq = part.indexOf("=");
    if (eq <= 0) throw new Error(`label "${part}" must be key=value`);
    out[part.slice(0, eq).trim()] = part.slice(eq + 1).trim();
  }
  return out;
}

export function createPage(el, ctx) {
  const name = h("input", { name: "name", id: "create-name", autocomplete: "off",
                            pattern: "[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?", maxlength: 63,
                            placeholder: "lab-1 (optional)" });
  const fromImage = h("input", { type: "radio", name: "source", value: "image", checked: true });
  const fromTemplate = h("input", { type: "radio", name: "source", value: "template" });
  const image = h("select", { name: "image", id: "create-image" }, h("option", { value: "host" }, "host"));
  const template = h("select", { name: "template", id: "create-template", disabled: true },
                     h("option", { value: "" }, "(no templates)"));
  const cpus = h("input", { type: "number", name: "cpus", id: "create-cpus", min: "0.1", step: "0.1", placeholder: "default" });
  const memory = h("input", { type: "number", name: "memory_mb", id: "create-memory", min: "16", step: "16", placeholder: "default" });
  const disk = h("input", { type: "number", name: "disk_mb", id: "create-disk", min: "16", step: "16", placeholder: "default" });
  const labels = h("textarea", { name: "labels", id: "create-labels", rows: 3, placeholder: "course=k8s-101\nteam=blue" });
  const ttl = h("input", { type: "number", name: "ttl_minutes", id: "create-ttl", min: "1", placeholder: "no limit" });
  const network = h("select", { name: "network", id: "create-network" },
                    h("option", { value: "none" }, "none (loopback only)"), h("option", { value: "nat" }, "nat (outbound internet)"));
  const status = h("div", { "aria-live": "polite" });
  const submit = h("button", { type: "submit", class: "primary" }, "Create session");

  const sync = () => {
    image.disabled = !fromImage.checked;
    template.disabled = !fromTemplate.checked || template.options[0].value === "";
  };
  fromImage.addEventListener("change", sync);
  fromTemplate.addEventListener("change", sync);

  call("GET", "/v1/images").then((r) => {
    const names = (r.images || []).map((i) => i.name).filter((n) => n !== "host");
    for (const n of names) image.append(h("option", { value: n }, n));
  }).catch(() => {});
  call("GET", "/v1/templates").then((r) => {
    const list = r.templates || [];
    if (list.length) mount(template, list.map((t) => h("option", { value: t.name }, t.name)));
    sync();
  }).catch(() => {});

  const form = h("form", { class: "create card", "aria-labelledby": "create-title" },
    h("h1", { id: "create-title" }, "New session"),
    field("Name", name, "A DNS label: lowercase letters, digits and '-'."),
    h("fieldset", {}, h("legend", {}, "Start from"),
      h("div", { class: "row" },
        h("label", { class: "check" }, fromImage, " an image"), image,
        h("label", { class: "check" }, fromTemplate, " a template"), template)),
    h("fieldset", {}, h("legend", {}, "Resources"),
      h("div", { class: "row" }, field("CPUs", cpus), field("Memory (MiB)", memory), field("Disk (MiB)", disk))),
    h("div", { class: "row" }, field("Time to live (minutes)", ttl), field("Network", network)),
    field("Labels", labels, "key=value, one per line"),
    h("div", { class: "actions" }, submit, h("a", { href: "#/", class: "button ghost" }, "Cancel")),
    status);

  form.addEventListener("submit", async (ev) => {
    ev.preventDefault();
    mount(status);
    const body = { wait: true };
    try {
      if (name.value.trim()) body.name = name.value.trim();
      if (fromTemplate.checked && template.value) body.template = template.value;
      else body.image = image.value;
      const resources = {};
      if (cpus.value) resources.cpus = Number(cpus.value);
      if (memory.value) resources.memory_mb = Number(memory.value);
      if (disk.value) resources.disk_mb = Number(disk.value);
      if (Object.keys(resources).length) body.resources = resources;
      const l = parseLabels(labels.value);
      if (Object.keys(l).length) body.labels = l;
      if (ttl.value) body.ttl_seconds = Math.round(Number(ttl.value) * 60);
      if (network.value !== "none") body.network = { mode: network.value };
    } catch (e) {
      mount(status, notice("error", e.message));
      return;
    }
    submit.disabled = true;
    submit.textContent = "Creating…";
    try {
      const s = await call("POST", "/v1/sessions", body);
      ctx.navigate(`#/s/${encodeURIComponent(s.id)}`);
    } catch (e) {
      if (e instanceof ApiError && e.status === 401) return ctx.onUnauthenticated();
      mount(status, notice("error", e.message));
    } finally {
      submit.disabled = false;
      submit.textContent = "Create session";
    }
  });
  mount(el, form);
  name.focus();
  return {};
}
