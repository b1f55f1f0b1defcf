// Building the page. Every piece of data goes in as text (textContent), never as markup:
// user names, payloads, paths and user agents are chosen by whoever connects to us.

type Child = Node | string | number | null | undefined | false;
type Attrs = Record<string, string | number | boolean | null | undefined | EventListener>;

/** An element with attributes (on* keys become listeners) and children (strings are text). */
export function h<K extends keyof HTMLElementTagNameMap>(
  tag: K, attrs: Attrs | null = null, ...children: (Child | Child[])[]
): HTMLElementTagNameMap[K] {
  const el = document.createElement(tag);
  if (attrs) {
    for (const [key, value] of Object.entries(attrs)) {
      if (value === null || value === undefined || value === false) continue;
      if (key.startsWith("on") && typeof value === "function") {
        el.addEventListener(key.slice(2), value);
      } else if (key === "class") {
        el.className = String(value);
      } else if (key === "href") {
        el.setAttribute("href", safeHref(String(value)));
      } else {
        el.setAttribute(key, value === true ? "" : String(value));
      }
    }
  }
  append(el, children);
  return el;
}

function append(el: Node, children: (Child | Child[])[]): void {
  for (const child of children) {
    if (Array.isArray(child)) append(el, child);
    else if (child === null || child === undefined || child === false) continue;
    else if (child instanceof Node) el.appendChild(child);
    else el.appendChild(document.createTextNode(String(child)));
  }
}

/** Links go to this dashboard or to http(s) pages; anything else (javascript:...) is dropped. */
export function safeHref(url: string): string {
  if (url.startsWith("/") && !url.startsWith("//")) return url;
  try {
    const parsed = new URL(url);
    if (parsed.protocol === "http:" || parsed.protocol === "https:") return parsed.href;
  } catch {
    /* not a URL */
  }
  return "#";
}

/** Replace the children of ``el``. */
export function fill(el: Element, ...children: (Child | Child[])[]): void {
  el.replaceChildren();
  append(el, children);
}

/** Attacker text for display: control characters made visible, length bounded. */
export function printable(text: string | null | undefined, max = 200): string {
  if (text === null || text === undefined) return "";
  // eslint-disable-next-line no-control-regex
  let out = text.replace(/[\u0000-\u001f\u007f-\u009f]/g, (c) =>
    c === "\n" ? "\u21b5" : `\\x${c.charCodeAt(0).toString(16).padStart(2, "0")}`);
  if (out.length > max) out = out.slice(0, max) + "\u2026";
  return out;
}

/** Hex payload as text: printable ASCII kept, the rest as dots. */
export function payloadText(hex: string | null | undefined, max = 120): string {
  if (!hex) return "";
  let out = "";
  for (let i = 0; i + 1 < hex.length && out.length < max; i += 2) {
    const b = parseInt(hex.slice(i, i + 2), 16);
    out += b >= 32 && b < 127 ? String.fromCharCode(b) : ".";
  }
  return hex.length / 2 > max ? out + "\u2026" : out;
}

const NUMBER = new Intl.NumberFormat("en");
export const fmt = (n: number | null | undefined): string => (n == null ? "\u2013" : NUMBER.format(n));

export function fmtBytes(n: number | null | undefined): string {
  if (n == null) return "\u2013";
  const units = ["B", "kB", "MB", "GB", "TB", "PB"];
  let i = 0;
  let v = n;
  while (v >= 1000 && i < units.length - 1) { v /= 1000; i++; }
  return `${v.toFixed(v < 10 && i > 0 ? 1 : 0)} ${units[i]}`;
}

export function fmtDuration(seconds: number | null | undefined): string {
  if (seconds == null) return "\u2013";
  const s = Math.round(seconds);
  if (s < 60) return `${s}s`;
  if (s < 3600) return `${Math.floor(s / 60)}m ${s % 60}s`;
  if (s < 86400) return `${Math.floor(s / 3600)}h ${Math.floor((s % 3600) / 60)}m`;
  return `${Math.floor(s / 86400)}d ${Math.floor((s % 86400) / 3600)}h`;
}

export function fmtTime(iso: string | null | undefined): string {
  if (!iso) return "\u2013";
  const d = new Date(iso);
  if (Number.isNaN(d.getTime())) return printable(iso, 40);
  return d.toISOString().replace("T", " ").slice(0, 19) + "Z";
}

export function ago(iso: string | null | undefined, now = Date.now()): string {
  if (!iso) return "never";
  const s = (now - new Date(iso).getTime()) / 1000;
  if (s < 0) return "just now";
  return `${fmtDuration(s)} ago`;
}

/** A country code to show beside a name (letters: flag emoji need a font not every system has). */
export function flag(code: string | null | undefined): string {
  return code && /^[A-Za-z]{2}$/.test(code) ? code.toUpperCase() : "";
}
