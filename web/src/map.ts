// The world map: countries drawn from Natural Earth shapes (no tile server needed), shaded
// by their number of events; places as clustered markers sized by count and coloured by
// what happened there; a heat-map layer; inbound and outbound traffic as two layers.

import L from "./leaflet-global";
import "leaflet.markercluster";
import "leaflet.heat";
import "leaflet/dist/leaflet.css";
import "leaflet.markercluster/dist/MarkerCluster.css";
import { feature } from "topojson-client";
import type { Topology, GeometryCollection } from "topojson-specification";
import type { Feature, FeatureCollection, Geometry } from "geojson";
import countries from "i18n-iso-countries";
import world from "world-atlas/countries-50m.json";
import type { PortolanEvent } from "./api";
import { flag, fmt, h, printable } from "./dom";

export type Kind = "failed" | "succeeded" | "probe" | "starred" | "outbound";
const FAILED = new Set(["auth_failure", "invalid_user"]);
const SUCCEEDED = new Set(["auth_success"]);

export const KIND_LABELS: Record<Kind, string> = {
  failed: "failed login", succeeded: "successful login", probe: "probe / request",
  starred: "starred address", outbound: "outbound (whom we reach)",
};

interface Place {
  key: string;
  lat: number;
  lon: number;
  count: number;
  direction: "inbound" | "outbound";
  actions: Map<string, number>;
  ips: Map<string, number>;
  city: string | null;
  country: string | null;
  countryName: string | null;
  marker: L.Marker | null;
}

interface CountryShape { feature: Feature<Geometry, { name: string }>; centre: L.LatLng; layer?: L.Path }

let shapesCache: Map<string, CountryShape> | null = null;

/** Country shapes by two-letter code, with a centre for places known only by country. */
function countryShapes(): Map<string, CountryShape> {
  if (shapesCache) return shapesCache;
  const topo = world as unknown as Topology<{ countries: GeometryCollection<{ name: string }> }>;
  const fc = feature(topo, topo.objects.countries) as FeatureCollection<Geometry, { name: string }>;
  const out = new Map<string, CountryShape>();
  for (const f of fc.features) {
    const code = f.id == null ? undefined : countries.numericToAlpha2(String(f.id).padStart(3, "0"));
    if (!code || code === "AQ") continue;  // nobody connects from Antarctica; it takes room
    unwrap(f.geometry);
    out.set(code, { feature: f, centre: centreOf(f.geometry) });
  }
  shapesCache = out;
  return out;
}

/** Rings that cross the antimeridian (Russia, Fiji) continue past 180 degrees east instead
 * of jumping back to -180, which would draw a band across the whole map. */
function unwrap(g: Geometry): void {
  const rings = g.type === "Polygon" ? g.coordinates : g.type === "MultiPolygon" ? g.coordinates.flat() : [];
  for (const ring of rings) {
    let lo = 180, hi = -180;
    for (const [x] of ring) { lo = Math.min(lo, x); hi = Math.max(hi, x); }
    if (hi - lo > 180) for (const pt of ring) if (pt[0] < 0) pt[0] += 360;
  }
}

function centreOf(g: Geometry): L.LatLng {
  // the centre of the bounds of the largest part (France's is in France, not the Atlantic)
  let rings: number[][][] = [];
  if (g.type === "Polygon") rings = [g.coordinates[0]];
  else if (g.type === "MultiPolygon") rings = g.coordinates.map((p) => p[0]);
  let best: number[][] = rings[0] ?? [[0, 0]];
  let bestArea = -1;
  for (const ring of rings) {
    let a = 0;
    for (let i = 0, j = ring.length - 1; i < ring.length; j = i++) {
      a += (ring[j][0] + ring[i][0]) * (ring[j][1] - ring[i][1]);
    }
    if (Math.abs(a) > bestArea) { bestArea = Math.abs(a); best = ring; }
  }
  const bounds = L.latLngBounds(best.map(([x, y]) => [y, x] as [number, number]));
  return bounds.getCenter();
}

export function kindOf(place: Place, starred: Set<string>): Kind {
  if (place.direction === "outbound") return "outbound";
  for (const ip of place.ips.keys()) if (starred.has(ip)) return "starred";
  let failed = 0, ok = 0, other = 0;
  for (const [action, n] of place.actions) {
    if (FAILED.has(action)) failed += n;
    else if (SUCCEEDED.has(action)) ok += n;
    else other += n;
  }
  if (ok > failed && ok > other) return "succeeded";
  return failed >= other ? "failed" : "probe";
}

/** Places where someone logged in get a ring, whatever most of their events were. */
function loggedIn(place: Place): boolean {
  for (const action of place.actions.keys()) if (SUCCEEDED.has(action)) return true;
  return false;
}

function radius(count: number): number {
  return Math.round(14 + Math.min(34, Math.log10(count + 1) * 11));
}

export interface MapOptions {
  tileUrl: string | null;
  /** Small map (an address's page): no layer switcher, no legend. */
  compact?: boolean;
  onCountry?: (code: string) => void;
  ipHref?: (ip: string) => string;
}

export class WorldMap {
  readonly map: L.Map;
  private places = new Map<string, Place>();
  private inbound: L.MarkerClusterGroup;
  private outbound: L.MarkerClusterGroup;
  private heat: L.HeatLayer;
  private countryLayer: L.GeoJSON;
  private countryCounts = new Map<string, { count: number; label: string | null }>();
  private heatOn = false;
  starred = new Set<string>();

  constructor(container: HTMLElement, private opts: MapOptions) {
    const renderer = L.canvas({ padding: 0.2 });
    this.map = L.map(container, {
      worldCopyJump: true, minZoom: 0, maxZoom: 12, zoomSnap: 0.25, renderer,
      attributionControl: !!opts.tileUrl, preferCanvas: true,
      keyboard: true,
    }).fitBounds([[-50, -160], [72, 175]]);
    container.setAttribute("aria-label", "World map of where connections come from");
    if (opts.tileUrl) {
      L.tileLayer(opts.tileUrl, { maxZoom: 19, attribution: "map tiles: as configured" }).addTo(this.map);
    }
    const shapes = countryShapes();
    this.countryLayer = L.geoJSON(
      { type: "FeatureCollection", features: [...shapes.values()].map((s) => s.feature) } as FeatureCollection,
      {
        style: () => this.countryStyle(0),
        onEachFeature: (f, layer) => {
          const code = f.id == null ? undefined : countries.numericToAlpha2(String(f.id).padStart(3, "0"));
          if (!code) return;
          const shape = shapes.get(code);
          if (shape) shape.layer = layer as L.Path;
          layer.bindTooltip(() => this.countryTip(code, (f.properties as { name: string }).name), { sticky: true });
          layer.on("click", () => this.opts.onCountry?.(code));
        },
      },
    ).addTo(this.map);
    container.dataset.countries = String(this.countryLayer.getLayers().length);
    const clusterOpts = (outbound: boolean): L.MarkerClusterGroupOptions => ({
      showCoverageOnHover: false, maxClusterRadius: 45, chunkedLoading: true,
      iconCreateFunction: (cluster) => this.clusterIcon(cluster, outbound),
    });
    this.inbound = L.markerClusterGroup(clusterOpts(false)).addTo(this.map);
    this.outbound = L.markerClusterGroup(clusterOpts(true)).addTo(this.map);
    this.heat = L.heatLayer([], { radius: 22, blur: 18, minOpacity: 0.35, maxZoom: 6 });
    if (!opts.compact) {
      L.control.layers(undefined, {
        "Inbound: who reaches us": this.inbound,
        "Outbound: whom we reach": this.outbound,
        "Countries shaded by count": this.countryLayer,
      }, { collapsed: true }).addTo(this.map);
      this.legend().addTo(this.map);
    }
  }

  private countryStyle(count: number): L.PathOptions {
    const max = Math.max(1, ...[...this.countryCounts.values()].map((c) => c.count));
    const t = count > 0 ? 0.15 + 0.85 * (Math.log(count + 1) / Math.log(max + 1)) : 0;
    const dark = matchMedia("(prefers-color-scheme: dark)").matches;
    return {
      weight: 0.6,
      color: dark ? "#4b5563" : "#94a3b8",
      fillColor: count > 0 ? (dark ? `rgba(56, 189, 248, ${t})` : `rgba(2, 132, 199, ${t})`) : (dark ? "#1e293b" : "#f8fafc"),
      fillOpacity: this.opts.tileUrl ? 0.45 : 1,
    };
  }

  private countryTip(code: string, name: string): HTMLElement {
    const c = this.countryCounts.get(code);
    return h("span", null, `${flag(code)} ${c?.label || name}: `, h("b", null, fmt(c?.count ?? 0)), " events");
  }

  /** Shade countries by these counts (two-letter code -> count). */
  setCountryCounts(items: { key: string | number | null; label: string | null; count: number }[]): void {
    this.countryCounts.clear();
    for (const item of items) {
      if (typeof item.key === "string" && item.key) this.countryCounts.set(item.key, { count: item.count, label: item.label });
    }
    for (const [code, shape] of countryShapes()) {
      shape.layer?.setStyle(this.countryStyle(this.countryCounts.get(code)?.count ?? 0));
    }
  }

  /** Forget every place (new filters, or a replay). */
  clear(): void {
    this.places.clear();
    this.inbound.clearLayers();
    this.outbound.clearLayers();
    // leaflet.heat redraws on every change and fails when it is off the map
    if (this.map.hasLayer(this.heat)) this.heat.setLatLngs([]);
  }

  get placeCount(): number { return this.places.size; }

  /** Add events to the places (new markers, or counts of those already shown). */
  addEvents(events: PortolanEvent[]): void {
    const added: Place[] = [];
    const changed = new Set<Place>();
    const shapes = countryShapes();
    for (const e of events) {
      let lat = e.lat, lon = e.lon;
      if (lat == null || lon == null) {
        const shape = e.country ? shapes.get(e.country) : undefined;
        if (!shape) continue;
        lat = shape.centre.lat;
        lon = shape.centre.lng;
      }
      const key = `${e.direction}:${lat.toFixed(1)},${lon.toFixed(1)}`;
      let place = this.places.get(key);
      if (!place) {
        place = { key, lat, lon, count: 0, direction: e.direction, actions: new Map(), ips: new Map(),
                  city: e.city, country: e.country, countryName: e.country_name, marker: null };
        this.places.set(key, place);
        added.push(place);
      } else if (place.marker) {
        changed.add(place);
      }
      place.count++;
      place.actions.set(e.action, (place.actions.get(e.action) ?? 0) + 1);
      const ip = e.direction === "inbound" ? e.src_ip : e.dst_ip;
      if (ip) place.ips.set(ip, (place.ips.get(ip) ?? 0) + 1);
    }
    const newIn: L.Marker[] = [], newOut: L.Marker[] = [];
    for (const place of added) {
      place.marker = this.marker(place);
      (place.direction === "outbound" ? newOut : newIn).push(place.marker);
    }
    if (newIn.length) this.inbound.addLayers(newIn);
    if (newOut.length) this.outbound.addLayers(newOut);
    if (changed.size) {
      const markers: L.Marker[] = [];
      for (const place of changed) {
        place.marker!.setIcon(this.icon(place));
        (place.marker!.options as { count?: number }).count = place.count;
        (place.marker!.options as { kind?: Kind }).kind = kindOf(place, this.starred);
        markers.push(place.marker!);
      }
      this.inbound.refreshClusters(markers.filter((m) => this.inbound.hasLayer(m)));
      this.outbound.refreshClusters(markers.filter((m) => this.outbound.hasLayer(m)));
    }
    if (this.heatOn) this.redrawHeat();
  }

  /** Re-colour markers (after the watch list changed). */
  restyle(): void {
    for (const place of this.places.values()) {
      if (!place.marker) continue;
      place.marker.setIcon(this.icon(place));
      (place.marker.options as { kind?: Kind }).kind = kindOf(place, this.starred);
    }
    this.inbound.refreshClusters();
    this.outbound.refreshClusters();
  }

  setHeat(on: boolean): void {
    this.heatOn = on;
    if (on) {
      this.heat.addTo(this.map);
      this.redrawHeat();
      this.map.removeLayer(this.inbound);
    } else {
      this.map.removeLayer(this.heat);
      this.inbound.addTo(this.map);
    }
  }

  fitPlaces(): void {
    const pts = [...this.places.values()].map((p) => L.latLng(p.lat, p.lon));
    if (pts.length) this.map.fitBounds(L.latLngBounds(pts).pad(0.3), { maxZoom: 3 });
  }

  private redrawHeat(): void {
    if (!this.map.hasLayer(this.heat)) return;
    const max = Math.max(1, ...[...this.places.values()].map((p) => p.count));
    this.heat.setOptions({ max: Math.log(max + 1) });
    this.heat.setLatLngs([...this.places.values()].filter((p) => p.direction === "inbound")
      .map((p) => [p.lat, p.lon, Math.log(p.count + 1)] as L.HeatLatLngTuple));
  }

  private icon(place: Place): L.DivIcon {
    const kind = kindOf(place, this.starred);
    const size = radius(place.count);
    const label = h("span", null, place.count > 999 ? `${Math.round(place.count / 100) / 10}k` : String(place.count));
    // outbound places sit up and to the right of their point, so that a place that both
    // reaches us and is reached by us shows two markers, not one hiding the other
    const out = place.direction === "outbound";
    return L.divIcon({
      html: label, className: `pin pin-${kind}${loggedIn(place) ? " login" : ""}${out ? " out" : ""}`,
      iconSize: [size, size], iconAnchor: out ? [-2, size + 2] : [size / 2, size / 2],
    });
  }

  private marker(place: Place): L.Marker {
    const kind = kindOf(place, this.starred);
    const where = [place.city, place.countryName || place.country].filter(Boolean).join(", ");
    const m = L.marker([place.lat, place.lon], {
      icon: this.icon(place), keyboard: true,
      title: `${printable(where || "unknown place", 80)}: ${place.count} events (mostly ${KIND_LABELS[kind]}${loggedIn(place) ? "; someone logged in" : ""})`,
      alt: `${printable(where, 80)} ${place.count}`,
    });
    (m.options as { count?: number }).count = place.count;
    (m.options as { kind?: Kind }).kind = kind;
    m.bindPopup(() => this.popup(place), { maxWidth: 320 });
    return m;
  }

  private popup(place: Place): HTMLElement {
    const where = [place.city, place.countryName || place.country].filter(Boolean).join(", ") || "Unknown place";
    const ips = [...place.ips.entries()].sort((a, b) => b[1] - a[1]);
    const actions = [...place.actions.entries()].sort((a, b) => b[1] - a[1]);
    return h("div", { class: "popup" },
      h("h3", null, `${flag(place.country)} ${printable(where, 80)}`),
      h("p", null, h("b", null, fmt(place.count)), ` event${place.count === 1 ? "" : "s"} `,
        place.direction === "outbound" ? "(outbound)" : ""),
      h("ul", { class: "plain" }, actions.slice(0, 6).map(([a, n]) => h("li", null, `${printable(a, 40)}: ${fmt(n)}`))),
      h("p", { class: "muted" }, `${fmt(ips.length)} address${ips.length === 1 ? "" : "es"}`),
      h("ul", { class: "plain" }, ips.slice(0, 10).map(([ip, n]) =>
        h("li", null, h("a", { href: this.opts.ipHref ? this.opts.ipHref(ip) : "#", "data-nav": "1" }, printable(ip, 64)), ` (${fmt(n)})`))),
      ips.length > 10 ? h("p", { class: "muted" }, `and ${fmt(ips.length - 10)} more`) : null,
    );
  }

  private clusterIcon(cluster: L.MarkerCluster, outbound: boolean): L.DivIcon {
    let total = 0;
    const kinds = new Map<Kind, number>();
    for (const m of cluster.getAllChildMarkers()) {
      const o = m.options as { count?: number; kind?: Kind };
      total += o.count ?? 1;
      if (o.kind) kinds.set(o.kind, (kinds.get(o.kind) ?? 0) + (o.count ?? 1));
    }
    let kind: Kind = outbound ? "outbound" : "probe";
    if (!outbound) {
      if (kinds.has("starred")) kind = "starred";
      else {
        let best = -1;
        for (const k of ["failed", "probe", "succeeded"] as Kind[]) {
          if ((kinds.get(k) ?? 0) > best) { best = kinds.get(k) ?? 0; kind = k; }
        }
      }
    }
    const size = radius(total) + 6;
    return L.divIcon({
      html: h("span", null, total > 999 ? `${Math.round(total / 100) / 10}k` : String(total)),
      className: `pin cluster pin-${kind}${outbound ? " out" : ""}`, iconSize: [size, size],
      iconAnchor: outbound ? [-2, size + 2] : [size / 2, size / 2],
    });
  }

  private legend(): L.Control {
    const Legend = L.Control.extend({
      onAdd: () => h("div", { class: "legend" },
        (Object.keys(KIND_LABELS) as Kind[]).map((k) =>
          h("div", null, h("span", { class: `dot pin-${k}` }), KIND_LABELS[k])),
        h("div", null, h("span", { class: "dot ring" }), "someone logged in")),
    });
    return new Legend({ position: "bottomleft" });
  }
}
