/**
 * Usage as `GET /api/usage` gives it, and the filters of the page: read from the address and
 * written back to it, so a link shares the same view.
 */

export interface UsageRow {
  id: string;
  key_id: string;
  model: string;
  requested_model: string | null;
  app: string | null;
  provider: string;
  status: string;
  images: number;
  images_requested: number;
  size: string | null;
  quality: string | null;
  response_format: string;
  error_code: string | null;
  cost: number;
  latency_ms: number;
  created_at: number;
}

export interface DayTotal {
  date: string;
  requests: number;
  images: number;
  cost: number;
}

export interface ModelTotal {
  model: string;
  requests: number;
  images: number;
  cost: number;
}

export interface UsageList {
  data: UsageRow[];
  totals: { by_day: DayTotal[]; by_model: ModelTotal[] };
}

export interface Filters {
  key: string;
  model: string;
  status: string;
  from: string;
  to: string;
  offset: number;
}

export const PAGE_SIZE = 50;
const FIELDS = ["key", "model", "status", "from", "to"] as const;

/** A UTC date (the API's days are UTC), `days` before today. */
export function utcDate(daysAgo = 0, now = Date.now()): string {
  return new Date(now - daysAgo * 86_400_000).toISOString().slice(0, 10);
}

/** The last 30 days, today included. */
export function defaultFilters(): Filters {
  return { key: "", model: "", status: "", from: utcDate(29), to: utcDate(0), offset: 0 };
}

export function filtersFromQuery(query: URLSearchParams): Filters {
  const filters = defaultFilters();
  for (const field of FIELDS) {
    const value = query.get(field);
    if (value !== null) filters[field] = value;
  }
  const offset = Number(query.get("offset"));
  filters.offset = Number.isInteger(offset) && offset > 0 ? offset : 0;
  return filters;
}

/** The address's query: only what differs from the defaults (an empty date is kept: "any"). */
export function addressQuery(filters: Filters): Record<string, string> {
  const defaults = defaultFilters();
  const query: Record<string, string> = {};
  for (const field of FIELDS) {
    if (filters[field] !== defaults[field]) query[field] = filters[field];
  }
  if (filters.offset > 0) query.offset = String(filters.offset);
  return query;
}

/**
 * The API's query: empty filters left out. `status` is sent only when chosen, so a hub that
 * does not know the filter yet still answers the page.
 */
export function apiQuery(filters: Filters, paged: boolean): string {
  const query = new URLSearchParams();
  for (const field of FIELDS) {
    if (filters[field] !== "") query.set(field, filters[field]);
  }
  if (paged) {
    query.set("limit", String(PAGE_SIZE));
    query.set("offset", String(filters.offset));
  }
  const text = query.toString();
  return text === "" ? "" : `?${text}`;
}

/** Every day from `from` to `to` with its totals, zero where nothing happened (a year at most). */
export function daySeries(days: DayTotal[], from: string, to: string): DayTotal[] {
  const known = new Map(days.map((day) => [day.date, day]));
  const start = Date.parse(from || days[0]?.date || "");
  const end = Date.parse(to || days.at(-1)?.date || "");
  if (Number.isNaN(start) || Number.isNaN(end) || end < start || end - start > 366 * 86_400_000) {
    return days;
  }
  const series: DayTotal[] = [];
  for (let time = start; time <= end; time += 86_400_000) {
    const date = new Date(time).toISOString().slice(0, 10);
    series.push(known.get(date) ?? { date, requests: 0, images: 0, cost: 0 });
  }
  return series;
}
