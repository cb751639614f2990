// One saga: its DAG coloured by step phase, the timeline of attempts and compensations,
// the journal, its input and outputs, errors, the definition snapshot, and where to look in
// Kubernetes. Everything is recomputed from the journal by the read API; the page reloads
// when the live feed says this saga changed.

import { api, cut, duration, h, jsonBlock, phaseBadge, query, time } from "./dom.js";
import { dag } from "./dag.js";
import { listen } from "./live.js";
import { timeline } from "./timeline.js";

const MAX_JOURNAL = 5000;

async function journal(base) {
  const items = [];
  let token = "";
  do {
    const page = await api(`${base}/history${query({ limit: 500, continue: token })}`);
    items.push(...page.items);
    token = page.continue;
  } while (token && items.length < MAX_JOURNAL);
  return { items, truncated: Boolean(token) };
}

export async function renderSaga(view, { namespace, name, uid }, show, alive) {
  const path = `/namespaces/${encodeURIComponent(namespace)}/sagas/${encodeURIComponent(name)}`;
  const base = `/api/v1${path}`;
  const load = async () => {
    const uidQuery = query({ uid });
    const [saga, history, snapshot, input] = await Promise.all([
      api(base + uidQuery),
      journal(base),
      api(`${base}/definition${uidQuery}`),
      api(`/ui/api${path}/input${uidQuery}`),
    ]);
    if (!alive()) return;
    view.replaceChildren(...page(saga, history, snapshot, input));
    view.dataset.phase = saga.phase;
    view.dataset.loadedAt = String(Date.now());
  };
  await listen({ namespace }, ({ changed, more }) => {
    if (alive() && (more || changed.some((c) => c.name === name))) load().catch(() => {});
  }, 300);
  await load();
  show(view);
}

function page(saga, history, snapshot, input) {
  const status = saga.status || {};
  const steps = status.steps || [];
  const byName = new Map(steps.map((step) => [step.name, step]));
  const specSteps = (snapshot.spec && snapshot.spec.steps) || steps.map((step) => ({ name: step.name, dependsOn: [] }));
  const failedStep = firstFailure(history.items);

  const state = (spec) => {
    const step = byName.get(spec.name);
    if (!step) return null;
    const lines = [step.phase];
    if (step.attempts > 1) lines.push(`${step.attempts} attempts`);
    if (step.compensationAttempts) lines.push(`undo ×${step.compensationAttempts}`);
    return { phase: step.phase, lines, failed: spec.name === failedStep, error: step.error };
  };

  const finished = ["Succeeded", "Compensated", "CompensationFailed", "Failed"].includes(saga.phase);
  return [
    h("p", { class: "crumbs" }, h("a", { href: `#/sagas${query({ namespace: saga.namespace })}` }, `← sagas in ${saga.namespace}`)),
    h("h1", {}, saga.name, " ", phaseBadge(saga.phase)),
    status.message ? h("p", { class: "message", "data-testid": "message" }, status.message) : null,
    h("dl", { class: "facts" },
      fact("Namespace", saga.namespace),
      fact("Definition", saga.definition.name ? `${saga.definition.name} (generation ${saga.definition.generation})` : "inline"),
      fact("Progress", status.progress || "—"),
      fact("Started", time(status.startedAt || saga.startedAt)),
      fact("Finished", time(status.finishedAt)),
      fact("Duration", duration(status.startedAt, status.finishedAt)),
      fact("Uid", saga.uid),
      fact("Journal", `${saga.journalLength} entries`),
    ),
    section("Steps", "dag", h("div", { class: "scroll" }, dag(specSteps, state, `steps of ${saga.name}`)), legend()),
    section("Timeline", "timeline", h("div", { class: "scroll" }, timeline(history.items, specSteps.map((step) => step.name), { finished }))),
    section("Step results", "steps", stepTable(steps)),
    errors(history.items),
    section("Input", "input", jsonBlock(input.text), input.truncated ? h("p", { class: "muted" }, `showing ${input.text.length} of ${input.size} characters`) : null),
    section("Journal", "history", historyTable(history.items),
      history.truncated ? h("p", { class: "muted" }, `first ${history.items.length} entries; the rest: kubectl sagaz history`) : null),
    section("Definition snapshot", "definition", h("details", {}, h("summary", {}, "spec as snapshotted when the saga started"), jsonBlock(snapshot.spec))),
    section("In Kubernetes", "kubernetes", kubectl(saga)),
  ];
}

function firstFailure(entries) {
  for (const entry of entries) {
    if (entry.type === "SagaFailing" && entry.event.reason !== "StepFailed") return null;
    if (entry.type === "StepFailed" && !entry.event.retryable) return entry.event.step;
  }
  // Retries exhausted: the last failed step before the saga turned back.
  let last = null;
  for (const entry of entries) {
    if (entry.type === "StepFailed") last = entry.event.step;
    if (entry.type === "SagaFailing") return last;
  }
  return null;
}

function fact(term, value) {
  return [h("dt", {}, term), h("dd", {}, value)];
}

function section(title, id, ...content) {
  return h("section", { "data-section": id }, h("h2", {}, title), ...content);
}

function legend() {
  return h("p", { class: "legend" }, ["Pending", "Running", "Succeeded", "Failed", "Compensating", "Compensated", "CompensationFailed", "Skipped"]
    .map((phase) => h("span", { class: `swatch phase-${phase}` }, phase)));
}

function stepTable(steps) {
  return h("table", { class: "list" },
    h("thead", {}, h("tr", {}, ["Step", "Phase", "Attempts", "Undo attempts", "Started", "Finished", "Error", "Output"].map((t) => h("th", {}, t)))),
    h("tbody", {}, steps.map((step) => h("tr", { "data-step": step.name },
      h("td", {}, step.name),
      h("td", {}, phaseBadge(step.phase)),
      h("td", { class: "num" }, String(step.attempts)),
      h("td", { class: "num" }, String(step.compensationAttempts || 0)),
      h("td", {}, time(step.startedAt)),
      h("td", {}, time(step.finishedAt)),
      h("td", { class: "error-text" }, step.error || ""),
      h("td", {}, step.outputTruncated ? h("i", { class: "muted" }, "larger than 1 KiB: not shown") : step.output == null ? "" : jsonBlock(step.output, 1024)),
    ))));
}

function errors(entries) {
  const failures = entries.filter((e) => e.event.error || e.type === "SagaFailing" || e.type === "SagaRejected");
  if (!failures.length) return null;
  return section("Errors", "errors", h("ul", { class: "errors" }, failures.map((e) => h("li", {},
    h("code", {}, e.type), " ",
    e.event.step ? `${e.event.step} #${e.event.attempt}: ` : "",
    cut(String(e.event.error || e.event.message || ""), 500)))));
}

function historyTable(entries) {
  return h("table", { class: "list history" },
    h("thead", {}, h("tr", {}, ["#", "At", "Event", "Step", "Attempt", "Details"].map((t) => h("th", {}, t)))),
    h("tbody", {}, entries.map((entry) => {
      const { at, step, attempt, ...rest } = entry.event;
      const details = Object.keys(rest).length ? cut(JSON.stringify(rest), 300) : "";
      return h("tr", { "data-type": entry.type },
        h("td", { class: "num" }, String(entry.seq)),
        h("td", { class: "at" }, time(at || entry.recordedAt, { ms: true })),
        h("td", {}, h("code", {}, entry.type)),
        h("td", {}, step || ""),
        h("td", { class: "num" }, attempt == null ? "" : String(attempt)),
        h("td", { class: "details" }, details));
    })));
}

function kubectl(saga) {
  const ns = saga.namespace;
  const commands = [
    ["Events", `kubectl -n ${ns} get events --field-selector involvedObject.kind=Saga,involvedObject.name=${saga.name}`],
    ["Jobs", `kubectl -n ${ns} get jobs -l sagaz.io/saga=${saga.name}`],
    ["Object", `kubectl -n ${ns} describe saga ${saga.name}`],
    ["Journal", `kubectl sagaz -n ${ns} history ${saga.name}`],
  ];
  return h("dl", { class: "commands" }, commands.map(([term, command]) => [h("dt", {}, term), h("dd", {}, h("code", {}, command))]));
}
