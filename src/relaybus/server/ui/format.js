// Small formatting helpers shared by the views (times, lists, durations).

/** "12s ago", "4m ago", "3h ago", or the date for older times; "" for none. */
export function ago(iso, now = Date.now()) {
  if (!iso) return "";
  const seconds = Math.max(0, Math.round((now - Date.parse(iso)) / 1000));
  if (seconds < 60) return `${seconds}s ago`;
  if (seconds < 3600) return `${Math.floor(seconds / 60)}m ago`;
  if (seconds < 86400) return `${Math.floor(seconds / 3600)}h ago`;
  return new Date(iso).toLocaleDateString();
}

/** Seconds from now until `iso` ("" when none; "lapsed" when past). */
export function countdown(iso, now = Date.now()) {
  if (!iso) return "";
  const seconds = Math.round((Date.parse(iso) - now) / 1000);
  if (seconds <= 0) return "lapsed";
  if (seconds < 120) return `${seconds}s`;
  return `${Math.floor(seconds / 60)}m ${seconds % 60}s`;
}

/** The local time of `iso`, to the second. */
export function clock(iso) {
  return iso ? new Date(iso).toLocaleTimeString() : "";
}

/** "a, b, c" from a list ("" for none). */
export function list(items) {
  return (items || []).join(", ");
}

/** Whether `text` (lower-cased already) appears in any of `fields`. */
export function matches(text, ...fields) {
  if (!text) return true;
  return fields.some((field) => String(field ?? "").toLowerCase().includes(text));
}
