// The Outbox page: the backlog of every OutboxWorker (from its status) and of the
// operator's own sagaz_outbox (read from the table now).

import { api, h } from "./dom.js";

export async function renderOutbox(view, show) {
  const { workers, operator } = await api("/ui/api/outbox");
  const num = (value) => h("td", { class: "num" }, value == null ? "—" : String(value));
  view.append(
    h("h1", {}, "Outbox"),
    h("h2", {}, "The operator's own outbox"),
    h("table", { class: "list", "data-testid": "own-outbox" },
      h("thead", {}, h("tr", {}, ["Table", "Pending", "Oldest pending", "Dead"].map((t) => h("th", {}, t)))),
      h("tbody", {}, h("tr", {}, h("td", {}, operator.table), num(operator.pendingEvents), num(`${operator.oldestPendingSeconds}s`), num(operator.deadEvents)))),
    h("h2", {}, "OutboxWorkers"),
    workers.length
      ? h("table", { class: "list", "data-testid": "workers" },
        h("thead", {}, h("tr", {}, ["Name", "Namespace", "Table", "Topic", "Replicas", "Ready", "Pending", "Oldest pending", "Dead", "Condition"].map((t) => h("th", {}, t)))),
        h("tbody", {}, workers.map((w) => h("tr", { "data-worker": `${w.namespace}/${w.name}` },
          h("td", {}, w.name), h("td", {}, w.namespace), h("td", {}, w.table), h("td", {}, w.topic || "—"),
          num(w.replicas), num(w.readyReplicas), num(w.pendingEvents),
          num(w.oldestPendingSeconds == null ? null : `${w.oldestPendingSeconds}s`), num(w.deadEvents),
          h("td", { class: w.deadEvents ? "error-text" : "" }, w.message || "")))))
      : h("p", { class: "muted" }, "No OutboxWorkers."),
  );
  show(view);
}
