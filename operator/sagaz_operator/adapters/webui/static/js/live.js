// The live feed: one EventSource on /ui/api/events for the page being shown. The server
// sends which sagas changed; the page decides whether to reload what it shows, at most
// once per `pause` ms, so a burst of 1,000 changes costs one reload, not 1,000.
// Pages open the stream first and load their data once it is open (see listen's promise).

const indicator = () => document.getElementById("live");

let current = null;

export function listen(params, onChange, pause = 500) {
  stop();
  const search = new URLSearchParams();
  for (const [key, value] of Object.entries(params)) if (value) search.set(key, value);
  const source = new EventSource(`/ui/api/events?${search}`);
  let timer = null;
  let pending = { changed: [], more: false };
  const flush = () => {
    timer = null;
    const batch = pending;
    pending = { changed: [], more: false };
    onChange(batch);
  };
  source.addEventListener("open", () => setState("live"));
  source.addEventListener("error", () => setState(source.readyState === EventSource.CLOSED ? "offline" : "reconnecting"));
  source.addEventListener("sagas", (event) => {
    const data = JSON.parse(event.data);
    pending.changed.push(...data.changed);
    pending.more = pending.more || data.more;
    if (timer === null) timer = setTimeout(flush, pause);
  });
  current = { source, cancel: () => timer !== null && clearTimeout(timer) };
  // Resolves once the server listens for this page (or after a while if it cannot), so the
  // page loads its data after that point and misses no change in between.
  return new Promise((resolve) => {
    source.addEventListener("open", resolve, { once: true });
    source.addEventListener("error", resolve, { once: true });
    setTimeout(resolve, 3000);
  });
}

export function stop() {
  if (current) {
    current.cancel();
    current.source.close();
    current = null;
  }
  setState("offline");
}

function setState(state) {
  const element = indicator();
  if (!element) return;
  element.textContent = state;
  element.dataset.state = state;
}
