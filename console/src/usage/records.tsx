/** The requests themselves, newest first, a page at a time; a failure shows the API's code. */
import { usd, when } from "../components.tsx";
import { PAGE_SIZE, type UsageRow } from "./types.ts";

interface Props {
  rows: UsageRow[];
  total: number;
  offset: number;
  /** Key id → name, for an admin's view of every key; absent for a client key. */
  keyNames: Map<string, string> | null;
  onPage: (offset: number) => void;
}

const STATUS_CLASS: Record<string, string> = {
  succeeded: "status-ok",
  partial: "status-warn",
  failed: "status-bad",
};

export function Records({ rows, total, offset, keyNames, onPage }: Props) {
  const first = rows.length === 0 ? 0 : offset + 1;
  const last = offset + rows.length;
  return (
    <section aria-labelledby="usage-records-title">
      <div class="usage-chart-head">
        <h2 id="usage-records-title">Requests</h2>
        <Pager first={first} last={last} total={total} offset={offset} onPage={onPage} />
      </div>
      <div class="table-wrap">
        <table class="usage-records">
          <thead>
            <tr>
              <th scope="col">Time</th>
              {keyNames && <th scope="col">Key</th>}
              <th scope="col">Model</th>
              <th scope="col">Status</th>
              <th scope="col" class="number">
                Images
              </th>
              <th scope="col">Size</th>
              <th scope="col">Quality</th>
              <th scope="col" class="number">
                Cost
              </th>
              <th scope="col" class="number">
                Latency
              </th>
            </tr>
          </thead>
          <tbody>
            {rows.length === 0 && (
              <tr>
                <td colSpan={9} class="muted">
                  No requests match these filters.
                </td>
              </tr>
            )}
            {rows.map((row) => (
              <tr key={row.id} class={row.status === "failed" ? "usage-failed" : undefined}>
                <td data-label="Time">{when(row.created_at)}</td>
                {keyNames && <td data-label="Key">{keyNames.get(row.key_id) ?? row.key_id}</td>}
                <td data-label="Model">
                  {row.model}
                  {row.requested_model && row.requested_model !== row.model && (
                    <div class="muted usage-small">asked for {row.requested_model}</div>
                  )}
                  {row.app && <div class="muted usage-small">app {row.app}</div>}
                </td>
                <td data-label="Status">
                  <span class={STATUS_CLASS[row.status] ?? ""}>{row.status}</span>
                  {row.error_code && (
                    <div>
                      <code>{row.error_code}</code>
                    </div>
                  )}
                </td>
                <td data-label="Images" class="number">
                  {row.images === row.images_requested
                    ? row.images
                    : `${row.images} of ${row.images_requested}`}
                </td>
                <td data-label="Size">{row.size ?? "—"}</td>
                <td data-label="Quality">{row.quality ?? "—"}</td>
                <td data-label="Cost" class="number">
                  {usd(row.cost)}
                </td>
                <td data-label="Latency" class="number">
                  {row.latency_ms} ms
                </td>
              </tr>
            ))}
          </tbody>
        </table>
      </div>
    </section>
  );
}

function Pager({
  first,
  last,
  total,
  offset,
  onPage,
}: {
  first: number;
  last: number;
  total: number;
  offset: number;
  onPage: (offset: number) => void;
}) {
  return (
    <nav class="usage-pager" aria-label="Pages of requests">
      <span class="muted" aria-live="polite">
        {first}–{last} of {total}
      </span>
      <button
        type="button"
        disabled={offset === 0}
        onClick={() => onPage(Math.max(0, offset - PAGE_SIZE))}
      >
        Previous
      </button>
      <button type="button" disabled={last >= total} onClick={() => onPage(offset + PAGE_SIZE)}>
        Next
      </button>
    </nav>
  );
}
