// A saga's steps as an SVG graph: columns by depth (longest path from a root), so every
// edge points right, and a step runs after everything to its left that it depends on.

import { cut, s } from "./dom.js";

const W = 176;
const H = 50;
const GAP_X = 64;
const GAP_Y = 22;
const PAD = 12;

/** Depth of every step; steps in a cycle or with unknown dependencies still get a column. */
export function layers(steps) {
  const byName = new Map(steps.map((step) => [step.name, step]));
  const depth = new Map();
  const visiting = new Set();
  const visit = (name) => {
    if (depth.has(name)) return depth.get(name);
    if (visiting.has(name) || !byName.has(name)) return -1;
    visiting.add(name);
    const parents = byName.get(name).dependsOn || [];
    const d = parents.length ? Math.max(...parents.map(visit)) + 1 : 0;
    visiting.delete(name);
    depth.set(name, Math.max(d, 0));
    return depth.get(name);
  };
  steps.forEach((step) => visit(step.name));
  return depth;
}

/**
 * steps: [{name, dependsOn, kind}]; state(name) -> {phase, lines: [text], failed} or null.
 */
export function dag(steps, state = () => null, label = "saga steps") {
  const depth = layers(steps);
  const columns = [];
  for (const step of steps) {
    const d = depth.get(step.name) ?? 0;
    (columns[d] ||= []).push(step);
  }
  const rows = Math.max(1, ...columns.map((c) => (c ? c.length : 0)));
  const height = PAD * 2 + rows * H + (rows - 1) * GAP_Y;
  const width = PAD * 2 + columns.length * W + Math.max(0, columns.length - 1) * GAP_X;
  const at = new Map();
  columns.forEach((column, i) => {
    const offset = (height - (column.length * H + (column.length - 1) * GAP_Y)) / 2;
    column.forEach((step, j) => at.set(step.name, { x: PAD + i * (W + GAP_X), y: offset + j * (H + GAP_Y) }));
  });

  const svg = s("svg", {
    class: "dag", width, height, viewBox: `0 0 ${width} ${height}`, role: "img", "aria-label": label,
  });
  svg.append(s("defs", {}, s("marker", {
    id: "arrow", viewBox: "0 0 10 10", refX: 9, refY: 5, markerWidth: 7, markerHeight: 7, orient: "auto-start-reverse",
  }, s("path", { d: "M0,0 L10,5 L0,10 z", class: "arrowhead" }))));

  for (const step of steps) {
    for (const parent of step.dependsOn || []) {
      const from = at.get(parent);
      const to = at.get(step.name);
      if (!from || !to) continue;
      const x1 = from.x + W, y1 = from.y + H / 2, x2 = to.x, y2 = to.y + H / 2;
      const mid = (x1 + x2) / 2;
      svg.append(s("path", {
        class: "edge", d: `M${x1},${y1} C${mid},${y1} ${mid},${y2} ${x2 - 2},${y2}`,
        "marker-end": "url(#arrow)", "data-from": parent, "data-to": step.name,
      }));
    }
  }
  for (const step of steps) {
    const { x, y } = at.get(step.name);
    const info = state(step) || {};
    const phase = info.phase || "Pending";
    const node = s("g", {
      class: `node phase-${phase}${info.failed ? " failed" : ""}${step.kind && step.kind !== "Compensatable" ? ` kind-${step.kind}` : ""}`,
      transform: `translate(${x},${y})`,
      "data-step": step.name, "data-phase": phase, "data-failed": info.failed ? "true" : null,
    });
    node.append(
      s("title", {}, [step.name, phase, ...(info.lines || []), info.error || ""].filter(Boolean).join("\n")),
      s("rect", { width: W, height: H, rx: 7, ry: 7 }),
      s("text", { x: 10, y: 19, class: "name" }, cut(step.name, 22)),
      s("text", { x: 10, y: 37, class: "sub" }, cut((info.lines || [phase]).join(" · "), 28)),
    );
    if (info.failed) node.append(s("text", { x: W - 18, y: 19, class: "mark" }, "✕"));
    if (step.kind === "Pivot" || step.kind === "Retriable") {
      node.append(s("text", { x: W - 10, y: 40, class: "kind", "text-anchor": "end" }, step.kind));
    }
    svg.append(node);
  }
  return svg;
}
