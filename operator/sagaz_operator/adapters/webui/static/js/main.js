// The console's router: the hash names the page (#/sagas, #/sagas/<ns>/<name>,
// #/definitions, #/outbox), so every view has a link and the server serves one HTML file.

import { errorBox, h } from "./dom.js";
import { stop } from "./live.js";
import { renderDefinitions } from "./definitions.js";
import { renderOutbox } from "./outbox.js";
import { renderSaga } from "./saga.js";
import { renderSagas } from "./sagas.js";

const main = document.getElementById("main");
let generation = 0;

function parse() {
  const hash = location.hash.replace(/^#/, "") || "/sagas";
  const [path, search = ""] = hash.split("?");
  const parts = path.split("/").filter(Boolean).map(decodeURIComponent);
  return { parts, params: Object.fromEntries(new URLSearchParams(search)) };
}

async function route() {
  const mine = ++generation;
  stop();
  const { parts, params } = parse();
  const page = parts[0] || "sagas";
  for (const link of document.querySelectorAll("[data-nav]")) {
    link.classList.toggle("active", link.dataset.nav === page);
  }
  // A page renders into a detached container that replaces the old one only if the user
  // has not moved on meanwhile.
  const view = h("div", { class: "view" });
  const show = (node) => {
    if (mine === generation) main.replaceChildren(node);
  };
  const alive = () => mine === generation;
  try {
    if (page === "sagas" && parts.length === 3) {
      await renderSaga(view, { namespace: parts[1], name: parts[2], uid: params.uid }, show, alive);
    } else if (page === "sagas") {
      await renderSagas(view, params, show, alive);
    } else if (page === "definitions") {
      await renderDefinitions(view, show);
    } else if (page === "outbox") {
      await renderOutbox(view, show);
    } else {
      view.append(h("p", { class: "error" }, `No page ${page}`));
      show(view);
    }
  } catch (error) {
    view.replaceChildren(errorBox(error));
    show(view);
  }
}

window.addEventListener("hashchange", route);
route();
