// The overview: live counters, the world map, events over time, the top lists and the
// live feed, kept up to date by the live stream without reloading.

import type { Chart } from "chart.js";
import { get, recentEvents, type Counts, type PortolanEvent, type Series } from "../api";
import { ipHref, type Ctx } from "../ctx";
import { flag, fmt, h, printable } from "../dom";
import { apiParams } from "../filters";
import type { WorldMap } from "../map";
import { card, eventRow, message, topList } from "../widgets";
import { loadCounts, loadSeries, seriesLabels } from "./common";

const FEED_ROWS = 60;
/** Newest events drawn on the map when the view opens. */
const MAP_EVENTS = 1000;

export async function overview(root: HTMLElement, ctx: Ctx): Promise<void> {
  const stat = (label: string, id: string) => {
    const value = h("span", { class: "value", id }, "\u2026");
    return [h("div", { class: "stat" }, h("span", { class: "label" }, label), value), value] as const;
  };
  const [rateBox, rate] = stat("events / min", "stat-rate");
  const [totalBox, total] = stat("events in range", "stat-total");
  const [ipsBox, ips] = stat("unique addresses", "stat-ips");
  const [activeBox, active] = stat("active connections", "stat-active");
  const mapEl = h("div", { class: "map", id: "overview-map" });
  const chartCanvas = h("canvas", { role: "img", "aria-label": "Events over time" });
  const feedBody = h("tbody", null);
  const feedNote = h("p", { class: "muted small", "aria-live": "off" }, "Waiting for new events\u2026");
  const tops: Record<string, HTMLElement> = {};
  for (const key of ["country", "asn", "ip", "user", "service", "dst_port"]) tops[key] = h("div", { class: "top-body" }, message("loading", "Loading\u2026"));

  root.append(
    h("h1", { class: "sr-only" }, "Overview"),
    h("div", { class: "stats" }, rateBox, totalBox, ipsBox, activeBox),
    h("div", { class: "grid two" },
      card("World map", mapEl),
      card("Events over time", h("div", { class: "chart" }, chartCanvas))),
    card("Live feed",
      h("div", { class: "scroll feed" },
        h("table", { class: "events", id: "feed" },
          h("caption", { class: "sr-only" }, "Newest events"),
          h("thead", null, h("tr", null, ["Time (UTC)", "Action", "Service", "Address", "User", "Detail"].map((t) => h("th", { scope: "col" }, t)))),
          feedBody)),
      feedNote),
    h("div", { class: "grid three" },
      card("Top countries", tops.country), card("Top networks (ASN)", tops.asn), card("Top addresses", tops.ip),
      card("User names tried", tops.user), card("Services", tops.service), card("Ports", tops.dst_port)),
  );

  // the map and chart libraries load while the numbers are fetched and drawn
  const mapModule = import("../map");
  const chartModule = import("../charts");
  let map: WorldMap | null = null;
  let left = false;
  ctx.onLeave(() => { left = true; map?.map.remove(); });
  let countryItems: Counts["items"] | null = null;
  let chart: Chart | null = null;
  ctx.onLeave(() => chart?.destroy());

  let series: Series | null = null;
  let minutes: Series | null = null;
  let totalCount = 0;
  const liveTimes: number[] = [];
  const opened = Date.now();

  const drawRate = () => {
    const now = Date.now();
    while (liveTimes.length && liveTimes[0] < now - 60_000) liveTimes.shift();
    const base = minutes && minutes.points.length > 1 ? minutes.points[minutes.points.length - 2].count : null;
    if (now - opened >= 60_000 || base === null) {
      rate.textContent = now - opened >= 60_000 || liveTimes.length ? fmt(liveTimes.length) : "\u2013";
    } else {
      rate.textContent = fmt(Math.max(base, liveTimes.length));
    }
  };

  const loadTops = async () => {
    // the heaviest question first; countries once, for the list and the map's shading
    const fields: [string, number][] = [["ip", 1000], ["country", 300], ["asn", 10], ["user", 11], ["service", 10], ["dst_port", 10]];
    const results = await Promise.all(fields.map(([f, n]) => loadCounts(f, n, ctx.signal)));
    const byField = Object.fromEntries(fields.map(([f], i) => [f, results[i]])) as Record<string, Counts | null>;
    const top10 = (c: Counts | null): Counts | null => c && { ...c, items: c.items.slice(0, 10),
      other: c.other + c.items.slice(10).reduce((a, i) => a + i.count, 0) };
    tops.country.replaceChildren(topList(top10(byField.country), {
      label: (i) => `${flag(String(i.key ?? ""))} ${printable(i.label || String(i.key ?? "unknown"), 40)}`,
      onPick: (i) => ctx.setFilter("country", String(i.key)),
    }));
    tops.asn.replaceChildren(topList(byField.asn, {
      label: (i) => (i.key == null ? "unknown" : `AS${i.key}${i.label ? " " + printable(i.label, 40) : ""}`),
      onPick: (i) => ctx.setFilter("asn", String(i.key)),
    }));
    // one question gives both the top addresses and how many there were
    const ipCounts = byField.ip;
    ips.textContent = ipCounts ? fmt(ipCounts.items.filter((i) => i.key).length) + (ipCounts.other > 0 ? "+" : "") : "\u2013";
    tops.ip.replaceChildren(topList(top10(ipCounts), { href: (i) => (i.key ? ipHref(String(i.key)) : null) }));
    tops.user.replaceChildren(topList(byField.user, { skipNone: true, onPick: (i) => ctx.setFilter("user", String(i.key)), empty: "No user names in this range." }));
    tops.service.replaceChildren(topList(byField.service, { onPick: (i) => ctx.setFilter("service", String(i.key)) }));
    tops.dst_port.replaceChildren(topList(byField.dst_port, {}));
    if (byField.country) { totalCount = byField.country.total; total.textContent = fmt(totalCount); }
    if (byField.country) {
      countryItems = byField.country.items;
      map?.setCountryCounts(countryItems);
    }
  };

  const loadActive = async () => {
    try {
      const r = await get<{ sessions: unknown[] }>("/sessions/active", apiParams({ limit: "1000" }), ctx.signal);
      active.textContent = fmt(r.sessions.length) + (r.sessions.length >= 1000 ? "+" : "");
    } catch { active.textContent = "\u2013"; }
  };

  const loadRate = async () => {
    const p = apiParams({ since: "5m", step: "60" });
    p.delete("until");
    try { minutes = await get<Series>("/series", p, ctx.signal); } catch { minutes = null; }
    drawRate();
  };

  const loadChart = async () => {
    series = await loadSeries(ctx.signal);
    const labels = seriesLabels(series), values = series.points.map((p) => p.count);
    if (chart) {
      chart.data.labels = labels;
      chart.data.datasets[0].data = values;
      chart.update("none");
    } else {
      const { timeChart } = await chartModule;
      if (!left) chart = timeChart(chartCanvas, labels, values);
    }
    drawRate();
  };

  const pending: PortolanEvent[] = [];
  const loadMap = async () => {
    const [events, starred] = await Promise.all([
      recentEvents(apiParams(), MAP_EVENTS, ctx.signal),
      get<{ ips: { ip: string }[] }>("/ips", { starred: "true", limit: "1000" }, ctx.signal).catch(() => null),
    ]);
    for (const e of events.slice(0, FEED_ROWS)) feedBody.appendChild(eventRow(e));
    if (events.length === 0) feedNote.textContent = "No events in this range yet; new ones appear here as they arrive.";
    const { WorldMap } = await mapModule;
    if (left) return;
    map = new WorldMap(mapEl, {
      tileUrl: ctx.info.tile_url, ipHref,
      onCountry: (code) => ctx.setFilter("country", code),
    });
    if (starred) map.starred = new Set(starred.ips.map((a) => a.ip));
    if (countryItems) map.setCountryCounts(countryItems);
    map.addEvents(events.concat(pending.splice(0)));
    mapEl.dataset.places = String(map.placeCount);
  };

  const liveUntil = !!apiParams().get("until");
  ctx.onLeave(ctx.live.on((batch, dropped) => {
    if (liveUntil || batch.length === 0) return;
    const now = Date.now();
    for (let i = 0; i < batch.length + dropped; i++) liveTimes.push(now);
    totalCount += batch.length + dropped;
    total.textContent = fmt(totalCount);
    drawRate();
    if (map) {
      map.addEvents(batch);
      mapEl.dataset.places = String(map.placeCount);
    } else {
      pending.push(...batch);
    }
    addToFeed(batch, dropped);
  }));

  const addToFeed = (batch: PortolanEvent[], dropped: number) => {
    const shown = batch.slice(-FEED_ROWS).reverse();
    const frag = document.createDocumentFragment();
    for (const e of shown) frag.appendChild(eventRow(e, true));
    feedBody.prepend(frag);
    while (feedBody.rows.length > FEED_ROWS) feedBody.deleteRow(-1);
    const hidden = batch.length - shown.length + dropped;
    feedNote.textContent = hidden > 0
      ? `${fmt(batch.length + dropped)} new events in the last half second; showing the newest ${shown.length}.`
      : `Updated ${new Date().toISOString().slice(11, 19)} UTC.`;
  };

  ctx.every(1000, drawRate);
  ctx.every(30_000, () => { loadTops(); loadChart(); loadActive(); loadRate(); });
  await Promise.all([loadRate(), loadChart(), loadTops(), loadActive(), loadMap()]);
  root.dataset.ready = "1";
}
