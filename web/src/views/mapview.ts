// The map on its own: inbound and outbound layers, clusters or heat, country shading, and
// replay (play the last day back, an hour in a second).

import { get, recentEvents, type Counts, type PortolanEvent } from "../api";
import { ipHref, type Ctx } from "../ctx";
import { fmt, h } from "../dom";
import { apiParams, current } from "../filters";
import { WorldMap } from "../map";

const MAP_EVENTS = 5000;

export async function mapView(root: HTMLElement, ctx: Ctx): Promise<void> {
  const mapEl = h("div", { class: "map big", id: "main-map" });
  const heat = h("input", { type: "checkbox", id: "heat", onchange: () => map.setHeat(heat.checked) });
  const play = h("button", { type: "button", id: "replay", class: "primary" }, "\u25b6 Replay the last day");
  const slider = h("input", { type: "range", min: "0", max: "1000", value: "1000", id: "replay-pos", "aria-label": "Replay position", disabled: true });
  const clock = h("span", { class: "mono", id: "replay-clock", "aria-live": "off" }, "");
  const summary = h("p", { class: "muted small", role: "status" }, "Loading\u2026");
  root.append(
    h("h1", { class: "sr-only" }, "Map"),
    h("div", { class: "toolbar" },
      h("label", { class: "switch" }, heat, " Heat map"),
      play, slider, clock),
    mapEl, summary);

  const map = new WorldMap(mapEl, { tileUrl: ctx.info.tile_url, ipHref, onCountry: (c) => ctx.setFilter("country", c) });
  ctx.onLeave(() => map.map.remove());
  let events: PortolanEvent[] = [];

  const [loaded, countries, starred] = await Promise.all([
    recentEvents(apiParams(), MAP_EVENTS, ctx.signal),
    get<Counts>("/counts/country", apiParams({ limit: "300" }), ctx.signal).catch(() => null),
    get<{ ips: { ip: string }[] }>("/ips", { starred: "true", limit: "1000" }, ctx.signal).catch(() => null),
  ]);
  events = loaded;
  if (starred) map.starred = new Set(starred.ips.map((a) => a.ip));
  if (countries) map.setCountryCounts(countries.items);
  map.addEvents(events);
  mapEl.dataset.places = String(map.placeCount);
  const describe = () => {
    summary.textContent = `${fmt(map.placeCount)} places from the newest ${fmt(events.length)} events` +
      (countries ? `; countries shaded by all ${fmt(countries.total)} events in range.` : ".");
  };
  describe();

  const liveOff = ctx.live.on((batch) => {
    if (replaying || current().get("until")) return;
    events = batch.slice().reverse().concat(events).slice(0, MAP_EVENTS);
    map.addEvents(batch);
    mapEl.dataset.places = String(map.placeCount);
    describe();
  });
  ctx.onLeave(liveOff);

  // -- replay -------------------------------------------------------------------------
  let replaying = false;
  let timer: number | null = null;
  let day: PortolanEvent[] = [];
  let start = 0, end = 0, pos = 0;
  const STEP_MS = 100;
  const HOUR_PER_SECOND = 3600 * 1000 / (1000 / STEP_MS);

  const showUpTo = (t: number) => {
    map.clear();
    map.addEvents(day.filter((e) => Date.parse(e.ts) <= t));
    clock.textContent = new Date(t).toISOString().slice(0, 16).replace("T", " ") + " UTC";
    slider.value = String(Math.round(1000 * (t - start) / Math.max(1, end - start)));
  };
  const stop = () => {
    if (timer !== null) clearInterval(timer);
    timer = null;
    play.textContent = "\u25b6 Replay the last day";
    play.setAttribute("aria-pressed", "false");
  };
  ctx.onLeave(stop);
  play.addEventListener("click", async () => {
    if (timer !== null) { stop(); return; }
    if (!replaying) {
      play.disabled = true;
      const p = apiParams();
      p.set("since", "24h");
      p.delete("until");
      day = (await recentEvents(p, 20000, ctx.signal)).reverse();
      play.disabled = false;
      if (day.length === 0) { summary.textContent = "Nothing happened in the last day."; return; }
      start = Date.parse(day[0].ts);
      end = Date.parse(day[day.length - 1].ts);
      pos = start;
      replaying = true;
      slider.disabled = false;
    }
    if (pos >= end) pos = start;
    play.textContent = "\u275a\u275a Pause";
    play.setAttribute("aria-pressed", "true");
    timer = window.setInterval(() => {
      pos = Math.min(end, pos + HOUR_PER_SECOND * STEP_MS / 1000);
      // incremental: add only what is new since the last step
      const before = pos - HOUR_PER_SECOND * STEP_MS / 1000;
      map.addEvents(day.filter((e) => { const t = Date.parse(e.ts); return t > before && t <= pos; }));
      clock.textContent = new Date(pos).toISOString().slice(0, 16).replace("T", " ") + " UTC";
      slider.value = String(Math.round(1000 * (pos - start) / Math.max(1, end - start)));
      if (pos >= end) stop();
    }, STEP_MS);
    if (pos === start) showUpTo(start);
  });
  slider.addEventListener("input", () => {
    if (!replaying) return;
    pos = start + (end - start) * Number(slider.value) / 1000;
    showUpTo(pos);
  });
  root.dataset.ready = "1";
}
