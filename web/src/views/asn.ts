// Traffic per AS (from packet capture): share of bytes per destination AS as a bar and a
// pie chart, labelled by number, "number: organisation" or organisation.

import type { Chart } from "chart.js";
import { ApiError, get } from "../api";
import { barChart, pieChart } from "../charts";
import type { Ctx } from "../ctx";
import { fmt, fmtBytes, h, printable } from "../dom";
import { apiParams } from "../filters";
import { card, message } from "../widgets";

export interface AsnRow { asn: number | null; org: string | null; bytes: number; packets: number | null }

/** The capture sensor's rows, whatever names it gives the byte counts. */
export function normalise(row: Record<string, unknown>): AsnRow {
  const num = (v: unknown): number | null => (typeof v === "number" && Number.isFinite(v) ? v : null);
  const bytes = num(row.bytes) ?? ((num(row.bytes_out) ?? 0) + (num(row.bytes_in) ?? 0));
  const org = [row.as_org, row.org, row.organisation, row.owner, row.name].find((v) => typeof v === "string");
  return { asn: num(row.asn), org: (org as string | undefined) ?? null, bytes, packets: num(row.packets) };
}

const LABELS: [string, string][] = [["number", "AS number"], ["both", "number: organisation"], ["org", "organisation"]];

export async function asnView(root: HTMLElement, ctx: Ctx): Promise<void> {
  const mode = new URLSearchParams(location.search).get("label") ?? "both";
  const select = h("select", { id: "asn-label", onchange: () => ctx.setFilter("label", select.value) },
    LABELS.map(([v, t]) => h("option", { value: v, selected: v === mode }, t)));
  root.append(h("h1", { class: "sr-only" }, "Traffic per AS"),
    h("div", { class: "toolbar" }, h("label", null, "Label by ", select)));
  let rows: AsnRow[];
  try {
    const r = await get<{ rows: Record<string, unknown>[] }>("/asn-traffic", apiParams({ limit: "20" }), ctx.signal);
    rows = r.rows.map(normalise).filter((x) => x.bytes > 0);
  } catch (err) {
    const missing = err instanceof ApiError && err.status === 404;
    root.append(card("Traffic per AS", message(missing ? "empty" : "error", missing
      ? "Traffic per AS is counted by the capture sensor (portolan capture). This installation has not recorded any: start a capture to see whom this machine talks to."
      : `Could not load traffic per AS: ${printable((err as Error).message, 200)}`)));
    root.dataset.ready = "1";
    return;
  }
  if (rows.length === 0) {
    root.append(card("Traffic per AS", message("empty", "No outbound traffic was recorded in this time range.")));
    root.dataset.ready = "1";
    return;
  }
  const label = (r: AsnRow) => {
    const n = r.asn == null ? "unknown" : `AS${r.asn}`;
    const org = printable(r.org ?? "", 40);
    return mode === "number" ? n : mode === "org" ? org || n : org ? `${n}: ${org}` : n;
  };
  const labels = rows.map(label), values = rows.map((r) => r.bytes);
  const total = values.reduce((a, b) => a + b, 0);
  // the canvas's fallback content: what the chart says, for screen readers
  const said = () => h("ul", null, rows.map((r, i) => h("li", null, `${labels[i]}: ${fmtBytes(r.bytes)}`)));
  const barCanvas = h("canvas", { role: "img", "aria-label": "Bytes per AS, bars" }, said());
  const pieCanvas = h("canvas", { role: "img", "aria-label": "Share of bytes per AS, pie" }, said());
  root.append(h("div", { class: "grid two" },
    card("Bytes per AS", h("div", { class: "chart tall" }, barCanvas)),
    card("Share of bytes", h("div", { class: "chart tall" }, pieCanvas))),
    card("Table", h("div", { class: "scroll" }, h("table", null,
      h("thead", null, h("tr", null, ["AS", "Organisation", "Bytes", "Share", "Packets"].map((t) => h("th", { scope: "col" }, t)))),
      h("tbody", null, rows.map((r) => h("tr", null,
        h("td", null, r.asn == null ? "\u2013" : h("a", { href: `/?asn=${r.asn}&direction=outbound` }, `AS${r.asn}`)),
        h("td", null, printable(r.org ?? "", 80)), h("td", null, fmtBytes(r.bytes)),
        h("td", null, `${(100 * r.bytes / total).toFixed(1)}%`), h("td", null, fmt(r.packets)))))))));
  const charts: Chart[] = [barChart(barCanvas, labels, values, fmtBytes), pieChart(pieCanvas, labels, values, fmtBytes)];
  ctx.onLeave(() => charts.forEach((c) => c.destroy()));
  root.dataset.ready = "1";
}
