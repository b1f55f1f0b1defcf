// The filters of every view, kept in the page's URL so a view can be shared and reloaded.
// Their names are the API's query parameters, so they pass straight through.

export const FILTER_KEYS = ["since", "until", "sensor", "service", "action", "country", "asn", "user",
                            "direction"] as const;
export type FilterKey = (typeof FILTER_KEYS)[number];

export const PRESETS: [string, string][] = [
  ["15m", "15 minutes"], ["1h", "1 hour"], ["6h", "6 hours"], ["24h", "24 hours"],
  ["7d", "7 days"], ["30d", "30 days"], ["all", "all time"],
];

export const DEFAULT_SINCE = "24h";

export function current(): URLSearchParams {
  const url = new URLSearchParams(location.search);
  const out = new URLSearchParams();
  for (const key of FILTER_KEYS) {
    const value = url.get(key);
    if (value) out.set(key, value);
  }
  if (!url.has("since")) out.set("since", DEFAULT_SINCE);
  return out;
}

/** The filters as API parameters (``since=`` empty means all time). */
export function apiParams(extra?: Record<string, string>): URLSearchParams {
  const p = current();
  if (p.get("since") === "all" || p.get("since") === "custom") p.delete("since");
  for (const [k, v] of Object.entries(extra ?? {})) p.set(k, v);
  return p;
}

/** Parameters for the live stream: every filter but the time range. */
export function streamParams(): URLSearchParams {
  const p = current();
  p.delete("since");
  p.delete("until");
  return p;
}

/** Seconds covered by the time range (for choosing a series step). */
export function rangeSeconds(): number {
  const p = current();
  const now = Date.now();
  const until = p.get("until") ? parseTime(p.get("until")!, now) : now;
  const sinceText = p.get("since") ?? DEFAULT_SINCE;
  const since = sinceText === "all" ? until - 30 * 86400_000 : parseTime(sinceText, now);
  return Math.max(60, (until - since) / 1000);
}

function parseTime(text: string, now: number): number {
  const m = /^(\d+)([smhdw])$/.exec(text);
  if (m) {
    const unit = { s: 1, m: 60, h: 3600, d: 86400, w: 604800 }[m[2] as "s"]!;
    return now - Number(m[1]) * unit * 1000;
  }
  const t = Date.parse(text);
  return Number.isNaN(t) ? now - 86400_000 : t;
}
