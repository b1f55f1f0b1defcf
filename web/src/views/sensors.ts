// Sensors: each one's health, last contact, lag and event rate.

import { get, type Sensor } from "../api";
import type { Ctx } from "../ctx";
import { ago, fmt, fmtDuration, fmtTime, h, printable } from "../dom";
import { card, message } from "../widgets";

export function health(s: Sensor, now = Date.now()): ["ok" | "late" | "silent", string] {
  const age = (now - Date.parse(s.last_seen)) / 1000;
  if (age < 300) return ["ok", "reporting"];
  if (age < 3600) return ["late", "quiet"];
  return ["silent", "silent"];
}

export async function sensorsView(root: HTMLElement, ctx: Ctx): Promise<void> {
  const body = h("div", null, message("loading", "Loading\u2026"));
  root.append(h("h1", { class: "sr-only" }, "Sensors"), card("Sensors", body));
  const load = async () => {
    const r = await get<{ sensors: Sensor[] }>("/sensors", undefined, ctx.signal);
    if (!r.sensors.length) { body.replaceChildren(message("empty", "No sensor has reported yet.")); return; }
    body.replaceChildren(h("div", { class: "scroll" }, h("table", { class: "sensors" },
      h("caption", { class: "sr-only" }, "Sensors"),
      h("thead", null, h("tr", null, ["Sensor", "Health", "Last contact", "Lag", "Events / s", "Events", "Newest event (UTC)", "First seen (UTC)"].map((t) => h("th", { scope: "col" }, t)))),
      h("tbody", null, r.sensors.map((s) => {
        const [kind, text] = health(s);
        return h("tr", null,
          h("td", null, h("a", { href: `/?sensor=${encodeURIComponent(s.name)}` }, printable(s.name, 60))),
          h("td", null, h("span", { class: `badge health-${kind}` }, text)),
          h("td", { class: "nowrap" }, ago(s.last_seen)),
          h("td", null, s.lag_seconds == null ? "\u2013" : fmtDuration(s.lag_seconds)),
          h("td", null, s.events_per_second.toFixed(2)),
          h("td", null, fmt(s.events)),
          h("td", { class: "mono nowrap" }, fmtTime(s.last_event_ts)),
          h("td", { class: "mono nowrap" }, fmtTime(s.first_seen)));
      })))));
  };
  ctx.every(10_000, () => { load().catch(() => undefined); });
  await load();
  root.dataset.ready = "1";
}
