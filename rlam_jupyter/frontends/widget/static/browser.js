// Inline R-LAM trace browser (anywidget). The kernel answers every question through
// the model's traits (runs, page, detail); this file only draws them.

const ICONS = {
  succeeded: "✓", cached: "⚡", failed: "✗", rejected: "⊘",
  proposed: "…", accepted: "…", running: "▶", open: "●",
  interrupted: "↯",
};

function h(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs)) {
    if (value === undefined || value === null || value === false) continue;
    if (key.startsWith("on")) node.addEventListener(key.slice(2), value);
    else if (key === "className") node.className = value;
    else node.setAttribute(key, value === true ? "" : String(value));
  }
  for (const child of children.flat()) {
    if (child === null || child === undefined || child === false) continue;
    node.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return node;
}

const icon = (status) =>
  h("span", { className: `rlam-w-status rlam-w-${status}`, title: status }, ICONS[status] ?? "?");
const short = (hash, n = 8) => (hash ? String(hash).split(":").pop().slice(0, n) : "");
const duration = (ms) =>
  ms === null || ms === undefined ? "" : ms < 1000 ? `${ms.toFixed(ms < 1 ? 2 : 0)} ms` : `${(ms / 1000).toFixed(1)} s`;

function runsTree(model) {
  const runs = model.get("runs") ?? [];
  const selected = model.get("run_id");
  const ids = new Set(runs.map((r) => r.run_id));
  const children = new Map();
  const roots = [];
  for (const run of runs) {
    if (run.parent_run_id && ids.has(run.parent_run_id)) {
      if (!children.has(run.parent_run_id)) children.set(run.parent_run_id, []);
      children.get(run.parent_run_id).push(run);
    } else roots.push(run);
  }
  const list = (items) =>
    h("ul", { className: "rlam-w-tree" },
      items.map((run) => {
        const problems = run.failed + run.rejected;
        const kids = children.get(run.run_id) ?? [];
        return h("li", {},
          h("div", {
              className: "rlam-w-run" + (run.run_id === selected ? " rlam-w-selected" : ""),
              "data-run-id": run.run_id,
              "data-parent-run-id": run.parent_run_id ?? "",
              title: run.run_id,
              onclick: () => { model.set("run_id", run.run_id); model.save_changes(); },
            },
            icon(run.status === "open" ? "open" : problems ? "failed" : run.status),
            h("b", {}, run.name), ` seed ${run.seed} · `,
            run.fork_seq ? `fork at ${run.fork_seq} · ${run.steps} new, ${run.shared} shared` : `${run.steps} steps`,
            problems ? h("span", { className: "rlam-w-problem" }, ` · ${problems} failed/rejected`) : null),
          kids.length ? list(kids) : null);
      }));
  return runs.length ? list(roots) : h("p", { className: "rlam-w-muted" }, "No runs in this store yet.");
}

function stepsTable(model) {
  const page = model.get("page") ?? {};
  const steps = page.steps ?? [];
  const seq = model.get("seq");
  const filter = h("select", {
      onchange: (e) => { model.set("status_filter", e.target.value); model.save_changes(); },
    },
    [["", "All steps"], ["failed,rejected", "Failed or rejected"], ["interrupted", "Interrupted"], ["succeeded", "Succeeded"], ["cached", "Cached"]]
      .map(([value, label]) => h("option", { value }, label)));
  filter.value = model.get("status_filter");
  const offset = page.offset ?? 0;
  const total = page.total ?? 0;
  const limit = page.limit ?? 50;
  const move = (to) => { model.set("offset", to); model.save_changes(); };
  const counts = page.counts ?? {};
  const summary = Object.entries(counts).map(([k, v]) => `${v} ${k}`).join(" · ");
  return h("div", {},
    h("div", { className: "rlam-w-bar" }, filter,
      h("span", { className: "rlam-w-muted rlam-w-counts" }, summary),
      h("span", { className: "rlam-w-pager" },
        h("button", { disabled: offset <= 0, onclick: () => move(Math.max(0, offset - limit)) }, "‹"),
        ` ${total ? offset + 1 : 0}–${Math.min(offset + limit, total)} of ${total} `,
        h("button", { disabled: offset + limit >= total, onclick: () => move(offset + limit) }, "›"))),
    h("table", { className: "rlam-w-steps" },
      h("tbody", {},
        steps.map((s) =>
          h("tr", {
              className: `rlam-w-row-${s.status}` + (s.seq === seq ? " rlam-w-selected" : "") + (s.inherited ? " rlam-w-inherited" : ""),
              "data-seq": s.seq, "data-status": s.status,
              onclick: () => { model.set("seq", s.seq); model.save_changes(); },
            },
            h("td", { className: "rlam-w-seq" }, s.seq),
            h("td", {}, icon(s.status)),
            h("td", { className: "rlam-w-action" }, s.action),
            h("td", { className: "rlam-w-muted" }, duration(s.duration_ms)),
            h("td", { className: "rlam-w-muted" }, s.cached_from ? "cached" : s.seed ?? ""),
            h("td", { className: "rlam-w-hash" },
              s.error_type ? `${s.error_type}: ${s.error_message ?? ""}` : Object.values(s.outputs ?? {}).map((x) => short(x)).join(" ")))))));
}

function detailPane(model) {
  const d = model.get("detail");
  if (!d || !d.step_id) return h("p", { className: "rlam-w-muted" }, "Click a step to see its detail.");
  const rows = [
    ["params", Object.entries(d.params ?? {}).map(([k, v]) => h("code", {}, `${k}=${JSON.stringify(v)} `))],
    ["seed", d.seed ?? ""],
    ["inputs", (d.input_links ?? []).map((l) =>
      h("div", {}, h("code", {}, l.name), " ← ",
        l.producer ? h("a", { href: "#", onclick: (e) => { e.preventDefault(); model.set("seq", l.producer.seq); model.save_changes(); } }, `step ${l.producer.seq} (${l.producer.action})`) : short(l.artifact_id)))],
    ["outputs", (d.output_artifacts ?? []).map((o) =>
      h("details", { open: Boolean(o.image) }, h("summary", {}, h("code", {}, o.name), ` ${short(o.artifact_id, 12)} ${o.python_type ?? ""}`),
        o.image ? h("img", { className: "rlam-figure", src: o.image, alt: o.preview ?? o.name }) : null,
        h("pre", {}, o.preview ?? "")))],
    ["env", d.environment?.same_as_run ? "= run environment" : `differs (${short(d.environment?.env_id)})`],
    ["history", (d.events ?? []).map((e) => e.status).join(" → ")],
  ];
  if (d.llm_call) rows.push(["LLM", `${d.llm_call.model} · ${d.llm_call.input_tokens ?? "?"}→${d.llm_call.output_tokens ?? "?"} tokens`]);
  return h("div", { className: `rlam-w-detail rlam-w-row-${d.status}`, "data-step-id": d.step_id },
    h("div", { className: "rlam-w-title" }, icon(d.status), ` Step ${d.seq} · `, h("code", {}, d.action), ` ${d.status}`),
    d.error_type ? h("div", { className: "rlam-w-error" }, h("b", {}, `${d.error_type}: `), d.error_message ?? "",
      d.traceback ? h("pre", {}, d.traceback) : null) : null,
    h("table", { className: "rlam-w-fields" }, h("tbody", {}, rows.map(([k, v]) => h("tr", {}, h("th", {}, k), h("td", {}, v))))));
}

function render({ model, el }) {
  el.classList.add("rlam-w");
  const draw = () => {
    el.replaceChildren(
      h("div", { className: "rlam-w-head" },
        h("b", {}, "R-LAM trace"), h("span", { className: "rlam-w-muted" }, ` ${model.get("store")}`),
        h("button", { className: "rlam-w-refresh", title: "Re-read the store", onclick: () => model.send({ type: "refresh" }) }, "⟳ Refresh")),
      model.get("error") ? h("div", { className: "rlam-w-error" }, model.get("error")) : null,
      h("div", { className: "rlam-w-grid" },
        h("section", { className: "rlam-w-runs" }, h("h4", {}, "Runs"), runsTree(model)),
        h("section", { className: "rlam-w-steps-pane" }, h("h4", {}, "Steps"), stepsTable(model))),
      h("section", { className: "rlam-w-detail-pane" }, detailPane(model)));
  };
  for (const name of ["runs", "run_id", "page", "seq", "detail", "error", "status_filter"]) {
    model.on(`change:${name}`, draw);
  }
  draw();
}

export default { render };
