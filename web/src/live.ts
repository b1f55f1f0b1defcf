// The live stream (Server-Sent Events). Events are parsed as they come and handed to the
// views in batches, at most a few times a second: at a thousand events a second the page
// redraws twice a second with five hundred new events, instead of a thousand times.

import type { PortolanEvent } from "./api";
import { streamParams } from "./filters";

export type Listener = (batch: PortolanEvent[], dropped: number) => void;
export type StatusListener = (status: "live" | "connecting" | "off") => void;

const FLUSH_MS = 500;
/** Most events kept per flush; beyond that they are counted, not kept. */
const KEEP_MAX = 2000;

export class LiveStream {
  private source: EventSource | null = null;
  private pending: PortolanEvent[] = [];
  private dropped = 0;
  private timer: number | null = null;
  private listeners = new Set<Listener>();
  private statusListeners = new Set<StatusListener>();
  private resetListeners = new Set<() => void>();
  private query = "";
  /** Events received since the stream opened (including dropped ones). */
  received = 0;

  constructor(private base = "/api/v1/stream") {}

  /** (Re)connect with the current filters; a no-op if they did not change. */
  connect(): void {
    const query = streamParams().toString();
    if (this.source && query === this.query) return;
    this.close();
    this.query = query;
    this.setStatus("connecting");
    const source = new EventSource(`${this.base}${query ? "?" + query : ""}`);
    this.source = source;
    source.onopen = () => this.setStatus("live");
    source.onerror = () => this.setStatus(source.readyState === EventSource.CLOSED ? "off" : "connecting");
    source.onmessage = (msg) => this.take(msg.data);
    source.addEventListener("reset", () => this.resetListeners.forEach((f) => f()));
  }

  close(): void {
    this.source?.close();
    this.source = null;
    this.setStatus("off");
  }

  on(listener: Listener): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  onStatus(listener: StatusListener): () => void {
    this.statusListeners.add(listener);
    return () => this.statusListeners.delete(listener);
  }

  onReset(listener: () => void): () => void {
    this.resetListeners.add(listener);
    return () => this.resetListeners.delete(listener);
  }

  private setStatus(status: "live" | "connecting" | "off"): void {
    this.statusListeners.forEach((f) => f(status));
  }

  private take(data: string): void {
    this.received++;
    if (this.pending.length >= KEEP_MAX) {
      // keep a fair sample of a flood: replace a random kept event
      this.dropped++;
      const i = Math.floor(Math.random() * (this.pending.length + this.dropped));
      if (i < this.pending.length) {
        try { this.pending[i] = JSON.parse(data) as PortolanEvent; } catch { /* skip */ }
      }
    } else {
      try { this.pending.push(JSON.parse(data) as PortolanEvent); } catch { /* skip */ }
    }
    if (this.timer === null) this.timer = window.setTimeout(() => this.flush(), FLUSH_MS);
  }

  private flush(): void {
    this.timer = null;
    const batch = this.pending;
    const dropped = this.dropped;
    this.pending = [];
    this.dropped = 0;
    batch.sort((a, b) => (a.ts < b.ts ? -1 : a.ts > b.ts ? 1 : 0));
    // how many arrived, for anyone checking that the page keeps up (tests, benchmarks)
    document.documentElement.dataset.liveReceived = String(this.received);
    for (const listener of this.listeners) {
      try { listener(batch, dropped); } catch (err) { console.error(err); }
    }
  }
}

export const live = new LiveStream();
