/**
 * The figures beside a chart, as a real table: a canvas alone says nothing to a screen reader,
 * and tests and people who want the numbers read them here.
 */
import type { ComponentChildren } from "preact";
import { usd } from "../components.tsx";

export interface FigureRow {
  key: string;
  label: ComponentChildren;
  requests: number;
  images: number;
  cost: number;
}

export function FiguresTable({
  caption,
  first,
  rows,
}: {
  caption: string;
  /** The first column's heading: what each row is (a date, a model). */
  first: string;
  rows: FigureRow[];
}) {
  return (
    <table>
      <caption class="usage-sr-only">{caption}</caption>
      <thead>
        <tr>
          <th scope="col">{first}</th>
          <th scope="col" class="number">
            Requests
          </th>
          <th scope="col" class="number">
            Images
          </th>
          <th scope="col" class="number">
            Spend
          </th>
        </tr>
      </thead>
      <tbody>
        {rows.length === 0 && (
          <tr>
            <td colSpan={4} class="muted">
              No requests in this range.
            </td>
          </tr>
        )}
        {rows.map((row) => (
          <tr key={row.key}>
            <th scope="row">{row.label}</th>
            <td class="number">{row.requests}</td>
            <td class="number">{row.images}</td>
            <td class="number">{usd(row.cost)}</td>
          </tr>
        ))}
      </tbody>
    </table>
  );
}
