// Helpers the views share: the series step for a range, safe loading.

import { get, type Counts, type Series } from "../api";
import { apiParams, rangeSeconds } from "../filters";

const STEPS = [60, 300, 900, 3600, 21600, 86400];

/** The smallest series step that keeps the chart under ~150 bars. */
export function stepFor(seconds: number): number {
  return STEPS.find((s) => seconds / s <= 150) ?? 86400;
}

export async function loadSeries(signal: AbortSignal): Promise<Series> {
  const step = stepFor(rangeSeconds());
  return get<Series>("/series", apiParams({ step: String(step) }), signal);
}

export async function loadCounts(field: string, limit: number, signal: AbortSignal): Promise<Counts | null> {
  try {
    return await get<Counts>(`/counts/${field}`, apiParams({ limit: String(limit) }), signal);
  } catch (err) {
    if ((err as Error).name === "AbortError") throw err;
    return null;
  }
}

export function seriesLabels(series: Series): string[] {
  return series.points.map((p) => {
    const iso = new Date(p.t).toISOString();
    return series.step >= 86400 ? iso.slice(5, 10) : series.step >= 3600 ? iso.slice(5, 13).replace("T", " ") + "h" : iso.slice(11, 16);
  });
}
