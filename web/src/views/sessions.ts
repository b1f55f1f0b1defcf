// Sessions (a connect paired with its disconnect) and active connections, with duration.

import { get, type Session } from "../api";
import type { Ctx } from "../ctx";
import { flag, fmtBytes, fmtDuration, fmtTime, h, printable } from "../dom";
import { apiParams } from "../filters";
import { card, ipLink, message } from "../widgets";

function client(s: Session): string {
  const a = s.attrs ?? {};
  const parts = ["client", "software", "client_version", "os", "instance"].map((k) => a[k]).filter((v) => v != null && v !== "");
  return printable([s.user, ...parts.map(String)].filter(Boolean).join(" \u00b7 "), 120);
}

function table(rows: Session[], activeNow: boolean, caption: string): HTMLElement {
  const now = Date.now();
  return h("div", { class: "scroll" }, h("table", { class: "sessions" },
    h("caption", { class: "sr-only" }, caption),
    h("thead", null, h("tr", null, ["Service", "Sensor", "Address", "Place", "User / client", "Start (UTC)", activeNow ? "Open for" : "Duration", "Bytes in / out"].map((t) => h("th", { scope: "col" }, t)))),
    h("tbody", null, rows.map((s) => {
      const open = s.end == null;
      const seconds = open && s.start ? (now - Date.parse(s.start)) / 1000 : s.duration;
      return h("tr", { class: open ? "open" : null },
        h("td", null, printable(s.service, 20), s.dst_port != null ? h("span", { class: "muted" }, `:${s.dst_port}`) : null),
        h("td", null, printable(s.sensor, 40)),
        h("td", null, ipLink(s.src_ip)),
        h("td", null, `${flag(s.country)} ${printable(s.city ?? s.country ?? "", 40)}`),
        h("td", { class: "user" }, client(s)),
        h("td", { class: "mono nowrap" }, fmtTime(s.start)),
        h("td", { class: "nowrap", "data-start": open ? s.start : null }, open ? h("span", { class: "badge succeeded" }, fmtDuration(seconds)) : fmtDuration(seconds)),
        h("td", { class: "nowrap" }, `${fmtBytes(s.bytes_in)} / ${fmtBytes(s.bytes_out)}`));
    }))));
}

export async function sessionsView(root: HTMLElement, ctx: Ctx): Promise<void> {
  const activeBody = h("div", null, message("loading", "Loading\u2026"));
  const recentBody = h("div", null, message("loading", "Loading\u2026"));
  root.append(h("h1", { class: "sr-only" }, "Sessions"),
    card("Active connections", activeBody),
    card("Sessions in range", recentBody));
  const params = () => {
    const all = apiParams({ limit: "200" });
    const p = new URLSearchParams();
    for (const k of ["since", "service", "sensor", "limit"]) if (all.get(k)) p.set(k, all.get(k)!);
    return p;
  };
  const load = async () => {
    const [a, r] = await Promise.all([
      get<{ sessions: Session[] }>("/sessions/active", params(), ctx.signal),
      get<{ sessions: Session[] }>("/sessions", params(), ctx.signal),
    ]);
    activeBody.replaceChildren(a.sessions.length ? table(a.sessions, true, "Active connections") : message("empty", "No open connections right now."));
    recentBody.replaceChildren(r.sessions.length ? table(r.sessions, false, "Sessions") : message("empty", "No sessions in this range."));
  };
  ctx.every(10_000, () => { load().catch(() => undefined); });
  // open connections' durations grow every second
  ctx.every(1000, () => {
    for (const td of root.querySelectorAll<HTMLElement>("td[data-start]")) {
      const badge = td.firstElementChild;
      if (badge) badge.textContent = fmtDuration((Date.now() - Date.parse(td.dataset.start!)) / 1000);
    }
  });
  await load();
  root.dataset.ready = "1";
}
