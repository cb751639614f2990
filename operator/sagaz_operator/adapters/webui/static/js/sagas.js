// The Sagas page: counts by phase, filters, one server-side page of sagas, live.

import { api, duration, h, phaseBadge, query, sagaHref, time } from "./dom.js";
import { listen } from "./live.js";

export const PHASES = [
  "Pending", "Running", "Suspended", "Compensating",
  "Succeeded", "Compensated", "CompensationFailed", "Failed",
];
const PAGE = 50;

function go(params) {
  location.hash = `#/sagas${query(params)}`;
}

export async function renderSagas(view, params, show, alive) {
  const filter = {
    namespace: params.namespace || "",
    phase: params.phase || "",
    definition: params.definition || "",
  };
  // Keyset paging: the token of this page, and the tokens of the pages before it.
  const cursor = params.continue || "";
  const back = params.back ? params.back.split(",") : [];

  const counts = h("div", { class: "counts", "data-testid": "counts" });
  const table = h("tbody");
  const pager = h("div", { class: "pager" });
  view.append(
    h("h1", {}, "Sagas"),
    counts,
    filters(filter),
    h("table", { class: "list", "data-testid": "sagas" },
      h("thead", {}, h("tr", {}, ["Name", "Namespace", "Definition", "Phase", "Progress", "Started", "Duration"].map((t) => h("th", {}, t)))),
      table),
    pager,
  );

  const load = async () => {
    const [page, phases] = await Promise.all([
      api(`/api/v1/sagas${query({ ...filter, limit: PAGE, continue: cursor })}`),
      api(`/ui/api/phases${query({ namespace: filter.namespace, definition: filter.definition })}`),
    ]);
    if (!alive()) return;
    counts.replaceChildren(...countChips(phases, filter));
    table.replaceChildren(...(page.items.length ? page.items.map(row) : [h("tr", {}, h("td", { colspan: 7, class: "muted" }, "No sagas."))]));
    pager.replaceChildren(
      back.length || cursor
        ? h("a", { href: `#/sagas${query({ ...filter, continue: back.at(-1) || "", back: back.slice(0, -1).join(",") })}` }, "← previous")
        : h("span", { class: "muted" }, "← previous"),
      h("span", { class: "muted" }, ` page ${back.length + (cursor ? 2 : 1)} · ${page.items.length} shown `),
      page.continue
        ? h("a", { href: `#/sagas${query({ ...filter, continue: page.continue, back: [...back, cursor].filter((x, i) => x || i > 0).join(",") })}`, "data-testid": "next" }, "next →")
        : h("span", { class: "muted" }, "next →"),
    );
    view.dataset.loadedAt = String(Date.now());
  };
  await listen({ namespace: filter.namespace, definition: filter.definition }, () => {
    if (alive()) load().catch(() => {});
  });
  await load();
  show(view);
}

function filters(filter) {
  const namespace = h("input", { name: "namespace", placeholder: "namespace", value: filter.namespace });
  const definition = h("input", { name: "definition", placeholder: "definition", value: filter.definition });
  const phase = h("select", { name: "phase" },
    h("option", { value: "" }, "any phase"),
    PHASES.map((p) => h("option", { value: p, selected: p === filter.phase }, p)));
  const apply = (event) => {
    event.preventDefault();
    go({ namespace: namespace.value.trim(), phase: phase.value, definition: definition.value.trim() });
  };
  phase.addEventListener("change", apply);
  return h("form", { class: "filters", onsubmit: apply },
    namespace, definition, phase, h("button", { type: "submit" }, "Filter"),
    h("a", { href: "#/sagas" }, "clear"));
}

function countChips(phases, filter) {
  const chips = [h("a", { class: `chip${filter.phase ? "" : " active"}`, href: `#/sagas${query({ ...filter, phase: "" })}`, "data-phase": "" }, "All ", h("b", {}, String(phases.total)))];
  for (const phase of PHASES) {
    const n = phases.phases[phase] || 0;
    chips.push(h("a", {
      class: `chip phase-${phase}${filter.phase === phase ? " active" : ""}`,
      href: `#/sagas${query({ ...filter, phase })}`,
      "data-phase": phase,
      "data-count": n,
    }, `${phase} `, h("b", {}, String(n))));
  }
  return chips;
}

function row(saga) {
  return h("tr", { "data-saga": `${saga.namespace}/${saga.name}`, "data-phase": saga.phase },
    h("td", {}, h("a", { href: sagaHref(saga.namespace, saga.name) + query({ uid: saga.uid }) }, saga.name)),
    h("td", {}, saga.namespace),
    h("td", {}, saga.definition.name || h("i", { class: "muted" }, "inline")),
    h("td", {}, phaseBadge(saga.phase)),
    h("td", { class: "num" }, saga.progress || "—"),
    h("td", {}, time(saga.startedAt || saga.createdAt)),
    h("td", { class: "num" }, duration(saga.startedAt || saga.createdAt, saga.finishedAt)),
  );
}
