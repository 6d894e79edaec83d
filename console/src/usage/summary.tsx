/** The range's totals at a glance, and a client key's own balance first. */
import { usd } from "../components.tsx";

interface Props {
  totals: { requests: number; images: number; cost: number } | null;
  /** Shown for a client key: its credit left, null for unlimited; undefined hides it. */
  balance?: number | null;
}

export function UsageSummary({ totals, balance }: Props) {
  return (
    <dl class="usage-summary">
      {balance !== undefined && (
        <div class="card">
          <dt>Balance</dt>
          <dd>{balance === null ? "unlimited" : usd(balance)}</dd>
        </div>
      )}
      <div class="card">
        <dt>Requests</dt>
        <dd>{totals ? totals.requests : "…"}</dd>
      </div>
      <div class="card">
        <dt>Images</dt>
        <dd>{totals ? totals.images : "…"}</dd>
      </div>
      <div class="card">
        <dt>Spend</dt>
        <dd>{totals ? usd(totals.cost) : "…"}</dd>
      </div>
    </dl>
  );
}
