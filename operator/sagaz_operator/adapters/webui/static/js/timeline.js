// A Gantt-like strip of a saga's journal: one bar per attempt (dispatched -> outcome), one
// row per step and one more per step that was compensated. Parallel branches overlap in
// time; retries follow each other on their row.

import { cut, s } from "./dom.js";

const LABEL = 150;
const ROW = 24;
const WIDTH = 760;
const AXIS = 22;

const STARTS = { StepDispatched: "action", CompensationDispatched: "compensation" };
const ENDS = {
  StepSucceeded: ["action", "succeeded"],
  StepFailed: ["action", "failed"],
  StepCancelled: ["action", "cancelled"],
  CompensationSucceeded: ["compensation", "succeeded"],
  CompensationFailed: ["compensation", "failed"],
};
const MARKS = ["SagaFailing", "CompensationStarted", "AbortRequested", "RetryRequested", "SagaFinished"];

/** Bars from journal entries: [{step, purpose, attempt, start, end, outcome, error}]. */
export function bars(entries, now = Date.now()) {
  const open = new Map();
  const result = [];
  for (const entry of entries) {
    const event = entry.event;
    const at = Date.parse(event.at || entry.recordedAt);
    if (STARTS[entry.type]) {
      const bar = { step: event.step, purpose: STARTS[entry.type], attempt: event.attempt, start: at, end: null, outcome: "running", error: null };
      open.set(`${bar.purpose}/${bar.step}/${bar.attempt}`, bar);
      result.push(bar);
    } else if (ENDS[entry.type]) {
      const [purpose, outcome] = ENDS[entry.type];
      const bar = open.get(`${purpose}/${event.step}/${event.attempt}`);
      if (bar) {
        bar.end = at;
        bar.outcome = outcome;
        bar.error = event.error || null;
        open.delete(`${purpose}/${event.step}/${event.attempt}`);
      }
    }
  }
  for (const bar of open.values()) bar.end = now;
  return result;
}

export function timeline(entries, stepOrder, { finished, now = Date.now() } = {}) {
  const all = bars(entries, now);
  const marks = entries.filter((e) => MARKS.includes(e.type)).map((e) => ({ type: e.type, at: Date.parse(e.event.at || e.recordedAt) }));
  const times = entries.map((e) => Date.parse(e.event.at || e.recordedAt)).filter((t) => !Number.isNaN(t));
  if (!times.length) return s("svg", { class: "timeline", width: 10, height: 10 });
  const t0 = Math.min(...times);
  const t1 = Math.max(...times, finished ? 0 : now, ...all.map((b) => b.end));
  const span = Math.max(t1 - t0, 1);
  const x = (t) => LABEL + ((t - t0) / span) * (WIDTH - LABEL - 10);

  const rows = [];
  for (const step of stepOrder) {
    const actions = all.filter((b) => b.step === step && b.purpose === "action");
    const undo = all.filter((b) => b.step === step && b.purpose === "compensation");
    rows.push({ label: step, items: actions, purpose: "action", step });
    if (undo.length) rows.push({ label: `↺ ${step}`, items: undo, purpose: "compensation", step });
  }
  const height = AXIS + rows.length * ROW + 8;
  const svg = s("svg", { class: "timeline", width: WIDTH, height, viewBox: `0 0 ${WIDTH} ${height}`, role: "img", "aria-label": "timeline" });

  for (let i = 0; i <= 4; i++) {
    const t = t0 + (span * i) / 4;
    svg.append(
      s("line", { class: "tick", x1: x(t), x2: x(t), y1: AXIS - 4, y2: height }),
      s("text", { class: "axis", x: x(t), y: 12, "text-anchor": i === 0 ? "start" : i === 4 ? "end" : "middle" }, `+${((t - t0) / 1000).toFixed(span < 10000 ? 2 : 0)}s`),
    );
  }
  for (const mark of marks) {
    svg.append(s("line", { class: `mark mark-${mark.type}`, x1: x(mark.at), x2: x(mark.at), y1: AXIS - 6, y2: height, "data-mark": mark.type },
      s("title", {}, `${mark.type} at +${((mark.at - t0) / 1000).toFixed(3)}s`)));
  }
  rows.forEach((row, i) => {
    const y = AXIS + i * ROW;
    svg.append(s("text", { class: `label ${row.purpose}`, x: 4, y: y + 16 }, cut(row.label, 22)));
    for (const bar of row.items) {
      const left = x(bar.start);
      const width = Math.max(3, x(bar.end) - left);
      svg.append(s("g", {
        class: `bar ${bar.purpose} ${bar.outcome}`,
        "data-step": bar.step, "data-purpose": bar.purpose, "data-attempt": bar.attempt, "data-outcome": bar.outcome,
      },
      s("title", {}, `${bar.purpose === "action" ? "" : "compensation of "}${bar.step}, attempt ${bar.attempt}: ${bar.outcome}` +
        ` (${((bar.end - bar.start) / 1000).toFixed(3)}s)${bar.error ? `\n${bar.error}` : ""}`),
      s("rect", { x: left, y: y + 4, width, height: ROW - 8, rx: 3 }),
      width > 22 ? s("text", { x: left + 4, y: y + 16, class: "attempt" }, `#${bar.attempt}`) : null));
    }
  });
  return svg;
}
