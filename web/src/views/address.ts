// One address's page: its story from the API, a small map, links out, star and note.

import { ApiError, get, put, type CountItem, type Story } from "../api";
import { ipHref, type Ctx } from "../ctx";
import { flag, fmt, fmtTime, h, printable } from "../dom";
import { WorldMap } from "../map";
import { card, eventTable, message } from "../widgets";

function mini(items: CountItem[], empty: string): HTMLElement {
  if (!items.length) return message("empty", empty);
  return h("ul", { class: "chips" }, items.slice(0, 30).map((i) =>
    h("li", null, h("span", { class: "name" }, printable(i.key == null ? "(none)" : String(i.key), 60)), h("span", { class: "n" }, fmt(i.count)))));
}

export async function addressView(root: HTMLElement, ctx: Ctx, ip: string): Promise<void> {
  let story: Story;
  try {
    story = await get<Story>(`/ips/${encodeURIComponent(ip)}`, undefined, ctx.signal);
  } catch (err) {
    root.append(h("h1", { class: "mono" }, printable(ip, 64)),
      message(err instanceof ApiError && err.status === 404 ? "empty" : "error",
        err instanceof ApiError && err.status === 404 ? "This address has not been seen." : `Could not load: ${printable((err as Error).message, 200)}`));
    return;
  }
  const a = story.address;
  const star = h("button", { type: "button", class: "star", id: "star", "aria-pressed": String(a.starred) }, a.starred ? "\u2605 Starred" : "\u2606 Star");
  star.addEventListener("click", async () => {
    const next = star.getAttribute("aria-pressed") !== "true";
    try {
      const w = await put<{ starred: boolean }>(`/ips/${encodeURIComponent(ip)}`, { starred: next });
      star.setAttribute("aria-pressed", String(w.starred));
      star.textContent = w.starred ? "\u2605 Starred" : "\u2606 Star";
    } catch (err) { noteState.textContent = `Could not change the star: ${printable((err as Error).message, 120)}`; }
  });
  const note = h("textarea", { id: "note", rows: 3, maxlength: 2000, "aria-label": "Note about this address" });
  note.value = a.note ?? "";
  const noteState = h("span", { class: "muted small", role: "status" });
  const save = h("button", { type: "button", onclick: async () => {
    try {
      await put(`/ips/${encodeURIComponent(ip)}`, { note: note.value });
      noteState.textContent = "Saved.";
    } catch (err) { noteState.textContent = `Not saved: ${printable((err as Error).message, 120)}`; }
  } }, "Save note");
  const links = Object.entries(story.links);
  const mapEl = h("div", { class: "map small", id: "ip-map" });
  root.append(
    h("div", { class: "ip-head" },
      h("h1", { class: "mono" }, printable(a.ip, 64)),
      h("p", null, a.country ? h("span", { class: "cc" }, flag(a.country)) : "unknown country", " ",
        printable(story.recent.find((e) => e.country_name)?.country_name ?? "", 40),
        a.asn != null ? ` \u00b7 AS${a.asn} ${printable(a.as_org ?? "", 60)}` : "", " \u00b7 ",
        h("a", { href: `/?${new URLSearchParams({ since: "30d" })}` }, "overview")),
      star),
    h("div", { class: "stats" },
      ...[["events", fmt(a.events)], ["failed logins", fmt(a.failures)], ["successful logins", fmt(a.successes)],
          ["first seen", fmtTime(a.first_seen)], ["last seen", fmtTime(a.last_seen)]].map(([l, v]) =>
        h("div", { class: "stat" }, h("span", { class: "label" }, l), h("span", { class: "value small" }, v)))),
    h("div", { class: "grid two" },
      card("Where", mapEl),
      card("Watch list",
        h("label", { for: "note" }, "Note"), note, h("div", { class: "row" }, save, noteState),
        h("h3", null, "Look it up elsewhere"),
        links.length ? h("ul", { class: "chips" }, links.map(([name, url]) => h("li", null, h("a", { href: url, target: "_blank", rel: "noopener noreferrer external" }, name)))) :
          message("empty", "Links out are shown only when addresses are shown in full."))),
    h("div", { class: "grid three" },
      card("Actions", mini(story.actions, "None.")), card("Services", mini(story.services, "None.")),
      card("User names tried", mini(story.users, "None.")), card("Ports", mini(story.ports, "None.")),
      card("First payloads", mini(story.payload_kinds, "No payloads.")), card("Sensors", mini(story.sensors, "None."))),
    card("Newest events", h("div", { class: "scroll" }, eventTable(story.recent, "Newest events of this address"))),
  );
  const map = new WorldMap(mapEl, { tileUrl: ctx.info.tile_url, compact: true, ipHref });
  ctx.onLeave(() => map.map.remove());
  if (a.starred) map.starred = new Set([a.ip]);
  map.addEvents(story.recent);
  map.fitPlaces();
  root.dataset.ready = "1";
}
