// What every view gets: the server's info, the live stream, and navigation.

import type { Info } from "./api";
import type { LiveStream } from "./live";

export interface Ctx {
  info: Info;
  live: LiveStream;
  /** Go to a path of the dashboard (keeps the filters unless ``query`` is given). */
  navigate: (path: string, query?: URLSearchParams) => void;
  /** Change one filter (empty value removes it): updates the URL and redraws the view. */
  setFilter: (key: string, value: string) => void;
  /** Run ``fn`` every ``ms`` while the view is shown. */
  every: (ms: number, fn: () => void) => void;
  /** Called when the view is left. */
  onLeave: (fn: () => void) => void;
  /** Aborted when the view is left (for fetches). */
  signal: AbortSignal;
}

export type View = (root: HTMLElement, ctx: Ctx, arg: string) => void | Promise<void>;

export const ipHref = (ip: string): string => `/ip/${encodeURIComponent(ip)}${location.search}`;
