// The dashboard's shell: navigation, the filter bar, the live-stream status, and the router
// (paths like /map and /ip/203.0.113.5, the filters in the query string).

import "./style.css";
import { get, type Counts, type Info } from "./api";
import type { Ctx, View } from "./ctx";
import { fill, h, printable } from "./dom";
import { PRESETS, current } from "./filters";
import { live } from "./live";

const NAV: [string, string][] = [
  ["/", "Overview"], ["/map", "Map"], ["/sessions", "Sessions"], ["/asn", "Traffic per AS"],
  ["/sensors", "Sensors"],
];

// each view is its own chunk, loaded when first shown: the shell paints before the map
// library, the world's shapes and the chart library have arrived
const ROUTES: [RegExp, () => Promise<View>][] = [
  [/^\/$/, () => import("./views/overview").then((m) => m.overview)],
  [/^\/map$/, () => import("./views/mapview").then((m) => m.mapView)],
  [/^\/sessions$/, () => import("./views/sessions").then((m) => m.sessionsView)],
  [/^\/ip\/(.+)$/, () => import("./views/address").then((m) => m.addressView)],
  [/^\/asn$/, () => import("./views/asn").then((m) => m.asnView)],
  [/^\/sensors$/, () => import("./views/sensors").then((m) => m.sensorsView)],
];

let info: Info = { version: "", privacy: "full", tile_url: null, counts: [], steps: [] };
let leave: (() => void)[] = [];
let controller = new AbortController();

const app = document.getElementById("app")!;
const status = h("span", { class: "status off", role: "status", "aria-live": "polite" }, "offline");
const navList = h("ul", null);
const filterBar = h("form", { class: "filters", "aria-label": "Filters", onsubmit: (e: Event) => e.preventDefault() });
const main = h("main", { id: "main", tabindex: "-1" });

// on a phone the filters fold away behind a button
const filterToggle = h("button", { type: "button", class: "filters-toggle", "aria-expanded": "false", "aria-controls": "filters" }, "Filters");
filterToggle.addEventListener("click", () => {
  const open = filterBar.classList.toggle("open");
  filterToggle.setAttribute("aria-expanded", String(open));
});
filterBar.id = "filters";

app.append(
  h("header", { class: "top" },
    h("a", { class: "brand", href: "/" }, h("span", { class: "logo", "aria-hidden": "true" }, "\u25ce"), "Portolan"),
    h("nav", { "aria-label": "Views" }, navList),
    filterToggle,
    status),
  filterBar, main);

live.onStatus((s) => {
  status.className = `status ${s}`;
  status.textContent = s === "live" ? "live" : s === "connecting" ? "connecting\u2026" : "offline";
});

function navigate(path: string, query?: URLSearchParams): void {
  const search = query ? query.toString() : location.search.replace(/^\?/, "");
  history.pushState(null, "", path + (search ? "?" + search : ""));
  route();
}

function setFilter(key: string, value: string): void {
  const params = new URLSearchParams(location.search);
  if (value) params.set(key, value); else params.delete(key);
  // a preset range ends now; a custom start keeps its end
  if (key === "since" && PRESETS.some(([v]) => v === value)) params.delete("until");
  history.pushState(null, "", location.pathname + (params.toString() ? "?" + params : ""));
  route();
}

function select(name: string, label: string, options: [string, string][], value: string): HTMLElement {
  const sel = h("select", { name, id: `f-${name}`, onchange: (e: Event) => setFilter(name, (e.target as HTMLSelectElement).value) },
    options.map(([v, text]) => h("option", { value: v, selected: v === value }, text)));
  return h("label", null, h("span", null, label), sel);
}

function textInput(name: string, label: string, value: string, placeholder: string, pattern: string): HTMLElement {
  const input = h("input", { name, id: `f-${name}`, value, placeholder, pattern, size: 6, autocomplete: "off",
    onchange: (e: Event) => {
      const el = e.target as HTMLInputElement;
      if (el.checkValidity()) setFilter(name, el.value.trim());
    } });
  return h("label", null, h("span", null, label), input);
}

const choices = new Map<string, string[]>();

async function loadChoices(): Promise<void> {
  await Promise.all(["sensor", "service", "action"].map(async (field) => {
    try {
      const c = await get<Counts>(`/counts/${field}`, { limit: "50", since: "30d" });
      choices.set(field, c.items.map((i) => String(i.key ?? "")).filter(Boolean));
    } catch { choices.set(field, []); }
  }));
}

function drawFilters(): void {
  const f = current();
  const since = f.get("since") ?? "24h";
  const presets = PRESETS.slice();
  const custom = !PRESETS.some(([v]) => v === since);
  presets.push(["custom", "custom\u2026"]);
  const pick = (field: string, label: string) => {
    const value = f.get(field) ?? "";
    const opts = (choices.get(field) ?? []).slice();
    if (value && !opts.includes(value)) opts.unshift(value);
    return select(field, label, [["", "all"], ...opts.map((o) => [o, printable(o, 40)] as [string, string])], value);
  };
  const parts: HTMLElement[] = [
    select("since", "Time", presets, custom ? "custom" : since),
  ];
  if (custom || since === "custom") {
    const toLocal = (text: string | null) => (text && !Number.isNaN(Date.parse(text)) ? new Date(text).toISOString().slice(0, 16) : "");
    const stamp = (key: string) => (e: Event) => {
      const v = (e.target as HTMLInputElement).value;
      setFilter(key, v ? new Date(v + "Z").toISOString().replace(".000", "") : "");
    };
    parts.push(h("label", null, h("span", null, "From (UTC)"), h("input", { type: "datetime-local", name: "from", value: toLocal(since === "custom" ? null : since), onchange: stamp("since") })));
    parts.push(h("label", null, h("span", null, "To (UTC)"), h("input", { type: "datetime-local", name: "to", value: toLocal(f.get("until")), onchange: stamp("until") })));
  }
  parts.push(pick("sensor", "Sensor"), pick("service", "Service"), pick("action", "Action"),
    select("direction", "Direction", [["", "both"], ["inbound", "inbound"], ["outbound", "outbound"]], f.get("direction") ?? ""),
    textInput("country", "Country", f.get("country") ?? "", "NL", "[A-Za-z]{2}"),
    textInput("asn", "ASN", f.get("asn") ?? "", "64500", "[0-9]{1,10}"));
  if (f.get("user")) parts.push(h("label", null, h("span", null, "User"), h("button", { type: "button", class: "chip", onclick: () => setFilter("user", "") }, `${printable(f.get("user"), 30)} \u00d7`)));
  const active = [...f.keys()].some((k) => k !== "since") || since !== "24h";
  if (active) parts.push(h("button", { type: "button", class: "clear", onclick: () => navigate(location.pathname, new URLSearchParams()) }, "Clear filters"));
  fill(filterBar, parts);
}

function drawNav(): void {
  const path = location.pathname;
  fill(navList, NAV.map(([href, label]) => {
    const here = href === "/" ? path === "/" : path.startsWith(href);
    return h("li", null, h("a", { href: href + location.search, "aria-current": here ? "page" : null }, label));
  }));
}

function route(): void {
  leave.forEach((f) => f());
  leave = [];
  controller.abort();
  controller = new AbortController();
  drawNav();
  drawFilters();
  const path = location.pathname;
  // sensors are listed whatever the filters say
  filterBar.hidden = path === "/sensors";
  filterToggle.hidden = path === "/sensors";
  const found = ROUTES.map(([re, view]) => [re.exec(path), view] as const).find(([m]) => m);
  main.replaceChildren();
  delete main.dataset.ready;
  const ctx: Ctx = {
    info, live, navigate, setFilter, signal: controller.signal,
    every: (ms, fn) => { const t = window.setInterval(fn, ms); leave.push(() => clearInterval(t)); },
    onLeave: (fn) => leave.push(fn),
  };
  if (!found) {
    main.append(h("h1", null, "Not found"), h("p", null, "There is no such page. ", h("a", { href: "/" }, "Back to the overview")));
    return;
  }
  const [m, load] = found;
  let arg = "";
  try { arg = m![1] ? decodeURIComponent(m![1]) : ""; } catch { arg = m![1] ?? ""; }
  live.connect();
  const signal = controller.signal;
  load().then((view) => (signal.aborted ? undefined : view(main, ctx, arg))).catch((err) => {
    if ((err as Error).name === "AbortError") return;
    main.append(h("p", { class: "state error", role: "alert" }, `Could not load this view: ${printable(String((err as Error).message ?? err), 200)}`));
  });
}

// same-origin links move inside the page without reloading it
document.addEventListener("click", (e) => {
  if (e.defaultPrevented || e.button !== 0 || e.metaKey || e.ctrlKey || e.shiftKey || e.altKey) return;
  const a = (e.target as Element).closest?.("a");
  if (!a || a.target || a.hasAttribute("download")) return;
  const url = new URL(a.href, location.href);
  if (url.origin !== location.origin || url.pathname.startsWith("/api/")) return;
  e.preventDefault();
  history.pushState(null, "", url.pathname + url.search);
  route();
  main.focus({ preventScroll: true });
});
window.addEventListener("popstate", route);
live.onReset(() => route());

(async () => {
  try { info = await get<Info>("/info"); } catch { /* defaults: no tiles */ }
  document.body.dataset.privacy = info.privacy;
  route();
  await loadChoices();
  drawFilters();
})();
