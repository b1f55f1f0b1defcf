// The server's REST API (/api/v1), typed as docs/api.md describes it.

export interface PortolanEvent {
  id: string;
  ts: string;
  sensor: string;
  source: string;
  service: string;
  action: string;
  direction: "inbound" | "outbound";
  proto: string | null;
  src_ip: string | null;
  src_port: number | null;
  dst_ip: string | null;
  dst_port: number | null;
  user: string | null;
  session: string | null;
  duration: number | null;
  bytes_in: number | null;
  bytes_out: number | null;
  packets: number | null;
  payload_hex: string | null;
  attrs: Record<string, unknown>;
  country: string | null;
  country_name: string | null;
  city: string | null;
  lat: number | null;
  lon: number | null;
  asn: number | null;
  as_org: string | null;
  network: string | null;
}

export interface CountItem { key: string | number | null; label: string | null; count: number }
export interface Counts { field: string; items: CountItem[]; other: number; total: number }
export interface Series { step: number; points: { t: string; count: number }[]; total: number }

export interface Session {
  session: string; sensor: string; source: string; service: string; proto: string | null;
  src_ip: string | null; src_port: number | null; dst_ip: string | null; dst_port: number | null;
  user: string | null; start: string | null; end: string | null; duration: number | null;
  bytes_in: number | null; bytes_out: number | null; attrs: Record<string, unknown>;
  country: string | null; city: string | null; lat: number | null; lon: number | null;
  asn: number | null; as_org: string | null;
}

export interface Address {
  ip: string; first_seen: string; last_seen: string; events: number; failures: number;
  successes: number; country: string | null; asn: number | null; as_org: string | null;
  starred: boolean; note: string | null;
}

export interface Story {
  address: Address; sensors: CountItem[]; services: CountItem[]; actions: CountItem[];
  users: CountItem[]; ports: CountItem[]; payload_kinds: CountItem[];
  recent: PortolanEvent[]; links: Record<string, string>;
}

export interface Sensor {
  name: string; first_seen: string; last_seen: string; last_event_ts: string | null;
  events: number; events_per_second: number; lag_seconds: number | null;
}

export interface Info { version: string; privacy: string; tile_url: string | null; counts: string[]; steps: number[] }

export class ApiError extends Error {
  constructor(public status: number, message: string) { super(message); }
}

export const BASE = "/api/v1";

export async function get<T>(path: string, params?: URLSearchParams | Record<string, string>,
                             signal?: AbortSignal): Promise<T> {
  const query = params ? new URLSearchParams(params).toString() : "";
  const resp = await fetch(`${BASE}${path}${query ? "?" + query : ""}`, {
    headers: { Accept: "application/json" }, signal,
  });
  if (!resp.ok) {
    let message = `${resp.status} ${resp.statusText}`;
    try {
      const body = await resp.json();
      if (body && typeof body.error === "string") message = body.error;
    } catch { /* not JSON */ }
    throw new ApiError(resp.status, message);
  }
  return (await resp.json()) as T;
}

export async function put<T>(path: string, body: unknown): Promise<T> {
  const resp = await fetch(`${BASE}${path}`, {
    method: "PUT", headers: { "Content-Type": "application/json" }, body: JSON.stringify(body),
  });
  if (!resp.ok) {
    const data = await resp.json().catch(() => ({}));
    throw new ApiError(resp.status, (data as { error?: string }).error ?? resp.statusText);
  }
  return (await resp.json()) as T;
}

/** The newest events matching ``params``, up to ``max`` (pages of 1000). */
export async function recentEvents(params: URLSearchParams, max: number,
                                   signal?: AbortSignal): Promise<PortolanEvent[]> {
  const out: PortolanEvent[] = [];
  let cursor: string | null = null;
  while (out.length < max) {
    const p = new URLSearchParams(params);
    p.set("limit", String(Math.min(1000, max - out.length)));
    if (cursor) p.set("cursor", cursor);
    const page: { events: PortolanEvent[]; next: string | null } = await get("/events", p, signal);
    out.push(...page.events);
    if (!page.next) break;
    cursor = page.next;
  }
  return out;
}
