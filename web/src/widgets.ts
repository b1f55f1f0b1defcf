// Pieces several views share: cards, top lists, the event table, empty and error states.

import type { CountItem, Counts, PortolanEvent } from "./api";
import { ipHref } from "./ctx";
import { flag, fmt, fmtTime, h, payloadText, printable } from "./dom";

export function card(title: string, ...body: (Node | null)[]): HTMLElement {
  return h("section", { class: "card" }, h("h2", null, title), ...body);
}

export function message(kind: "empty" | "error" | "loading", text: string): HTMLElement {
  return h("p", { class: `state ${kind}`, role: kind === "error" ? "alert" : "status" }, text);
}

export function actionClass(action: string, direction = "inbound"): string {
  if (direction === "outbound") return "outbound";
  if (action === "auth_failure" || action === "invalid_user") return "failed";
  if (action === "auth_success") return "succeeded";
  return "probe";
}

export function badge(action: string, direction = "inbound"): HTMLElement {
  return h("span", { class: `badge ${actionClass(action, direction)}` }, printable(action, 24));
}

/** What an event says beyond its five-tuple: user agent, path, payload, client. */
export function eventDetail(e: PortolanEvent): string {
  const parts: string[] = [];
  const a = e.attrs ?? {};
  const str = (k: string): string | null => (typeof a[k] === "string" ? (a[k] as string) : null);
  const method = str("method"), path = str("path");
  if (method || path) parts.push(`${method ?? ""} ${str("host") ?? ""}${path ?? ""}`.trim());
  if (a["status"] != null) parts.push(`\u2192 ${String(a["status"])}`);
  for (const k of ["user_agent", "sni", "client", "software", "client_version", "os", "instance"]) {
    const v = a[k];
    if (v != null && v !== "") parts.push(`${k.replace("_", " ")}: ${String(v)}`);
  }
  if (e.payload_hex) parts.push(`payload: ${payloadText(e.payload_hex, 80)}`);
  return printable(parts.join("  \u00b7  "), 240);
}

export function ipLink(ip: string | null): Node {
  if (!ip) return document.createTextNode("\u2013");
  return h("a", { href: ipHref(ip), class: "mono" }, printable(ip, 64));
}

export function eventRow(e: PortolanEvent, fresh = false): HTMLTableRowElement {
  const remote = e.direction === "inbound" ? e.src_ip : e.dst_ip;
  const port = e.direction === "inbound" ? e.dst_port : e.dst_port;
  return h("tr", { class: fresh ? "fresh" : null, "data-id": e.id },
    h("td", { class: "mono nowrap" }, fmtTime(e.ts).slice(11, 19)),
    h("td", null, badge(e.action, e.direction)),
    h("td", null, printable(e.service, 20), port != null ? h("span", { class: "muted" }, `:${port}`) : null),
    h("td", { class: "nowrap" }, ipLink(remote), " ", h("span", { class: "cc", title: e.country_name ?? "" }, flag(e.country))),
    h("td", { class: "user" }, e.user != null ? printable(e.user, 64) : ""),
    h("td", { class: "detail" }, eventDetail(e)),
  );
}

export function eventTable(events: PortolanEvent[], caption: string): HTMLTableElement {
  return h("table", { class: "events" },
    h("caption", { class: "sr-only" }, caption),
    h("thead", null, h("tr", null, ["Time (UTC)", "Action", "Service", "Address", "User", "Detail"].map((t) => h("th", { scope: "col" }, t)))),
    h("tbody", null, events.map((e) => eventRow(e))));
}

/** A ranked list with bars; ``onPick`` makes each row a button (set a filter). */
export function topList(counts: Counts | null, opts: {
  label?: (item: CountItem) => string;
  href?: (item: CountItem) => string | null;
  onPick?: (item: CountItem) => void;
  empty?: string;
  /** Leave out the events that have no value (no user name...). */
  skipNone?: boolean;
}): HTMLElement {
  if (counts && opts.skipNone) counts = { ...counts, items: counts.items.filter((i) => i.key != null && i.key !== "") };
  if (!counts || counts.items.length === 0) return message("empty", opts.empty ?? "Nothing in this range.");
  const max = Math.max(1, ...counts.items.map((i) => i.count));
  const list = h("ol", { class: "top" });
  for (const item of counts.items) {
    const name = opts.label ? opts.label(item) : printable(item.key == null ? "(none)" : String(item.key), 60);
    const href = opts.href?.(item) ?? null;
    const bar = h("span", { class: "bar", style: `width:${(100 * item.count / max).toFixed(1)}%` });
    const text = h("span", { class: "name" }, name);
    const body = href
      ? h("a", { href }, text)
      : opts.onPick && item.key != null
        ? h("button", { type: "button", class: "link", title: "Filter by this", onclick: () => opts.onPick!(item) }, text)
        : text;
    list.appendChild(h("li", null, bar, body, h("span", { class: "n" }, fmt(item.count))));
  }
  const foot = counts.other > 0 ? h("p", { class: "muted small" }, `others: ${fmt(counts.other)}`) : null;
  return h("div", null, list, foot);
}
