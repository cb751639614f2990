// The Definitions page: every SagaDefinition the operator can list, as a graph of its steps
// with their kinds, effective timeouts and retry policies; an invalid one with its message.

import { api, h, query } from "./dom.js";
import { dag } from "./dag.js";

export async function renderDefinitions(view, show) {
  const { items } = await api("/ui/api/sagadefinitions");
  view.append(h("h1", {}, "Definitions"));
  if (!items.length) view.append(h("p", { class: "muted" }, "No SagaDefinitions."));
  for (const item of items) view.append(card(item));
  show(view);
}

function retry(policy) {
  if (!policy) return "—";
  const b = policy.backoff;
  return `${policy.maxAttempts} attempts, ${b.initialSeconds}s ×${b.factor} ≤ ${b.maxSeconds}s`;
}

function card(item) {
  const kinds = (step) => ({ phase: `kind-${step.kind}`, lines: [step.kind, step.timeoutSeconds ? `${step.timeoutSeconds}s` : null].filter(Boolean) });
  return h("section", { class: `card${item.valid ? "" : " invalid"}`, "data-definition": `${item.namespace}/${item.name}`, "data-valid": String(item.valid) },
    h("h2", {}, item.name, " ", h("span", { class: "muted" }, `${item.namespace} · generation ${item.generation ?? "?"}`), " ",
      item.valid ? h("span", { class: "badge phase-Succeeded" }, "Valid") : h("span", { class: "badge phase-Failed" }, "Invalid")),
    item.valid ? null : h("p", { class: "error", "data-testid": "definition-error" }, item.error),
    item.ready === "False" && item.message && item.message !== item.error ? h("p", { class: "muted" }, `Ready condition: ${item.message}`) : null,
    item.valid
      ? h("p", { class: "muted" }, `failure strategy ${item.failureStrategy} · saga deadline ${item.timeoutSeconds}s · compensation retry ${retry(item.compensationRetry)} · `,
        h("a", { href: `#/sagas${query({ namespace: item.namespace, definition: item.name })}` }, "its sagas"))
      : null,
    item.steps.length ? h("div", { class: "scroll" }, dag(item.steps, kinds, `steps of ${item.name}`)) : null,
    item.valid ? h("table", { class: "list" },
      h("thead", {}, h("tr", {}, ["Step", "Kind", "After", "Timeout", "Retry", "Action", "Compensation"].map((t) => h("th", {}, t)))),
      h("tbody", {}, item.steps.map((step) => h("tr", { "data-step": step.name },
        h("td", {}, step.name),
        h("td", {}, h("span", { class: `badge kind-${step.kind}` }, step.kind)),
        h("td", {}, step.dependsOn.join(", ") || "—"),
        h("td", { class: "num" }, `${step.timeoutSeconds}s`),
        h("td", {}, retry(step.retry)),
        h("td", {}, h("code", {}, step.action)),
        h("td", {}, step.compensation ? h("code", {}, step.compensation) : h("i", { class: "muted" }, "none")))))) : null,
  );
}
