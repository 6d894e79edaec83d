/** Spend (bars, dollars on the left) and images (a line, on the right) per day, and its table. */
import { usd } from "../components.tsx";
import { baseOptions, useChart, useChartColors } from "./chart-setup.ts";
import { FiguresTable } from "./figures-table.tsx";
import type { DayTotal } from "./types.ts";

export function DayChart({ days }: { days: DayTotal[] }) {
  const colors = useChartColors();
  const canvas = useChart(
    () => ({
      type: "bar",
      data: {
        labels: days.map((day) => day.date),
        datasets: [
          {
            type: "bar",
            label: "Spend (USD)",
            data: days.map((day) => day.cost),
            backgroundColor: colors.spend,
            yAxisID: "spend",
            order: 2,
          },
          {
            type: "line",
            label: "Images",
            data: days.map((day) => day.images),
            borderColor: colors.images,
            backgroundColor: colors.images,
            pointRadius: 2,
            yAxisID: "images",
            order: 1,
          },
        ],
      },
      options: {
        ...baseOptions(colors),
        interaction: { mode: "index", intersect: false },
        scales: {
          x: {
            ticks: { color: colors.muted, maxRotation: 0, autoSkipPadding: 12 },
            grid: { display: false },
          },
          spend: {
            position: "left",
            beginAtZero: true,
            title: { display: true, text: "USD", color: colors.muted },
            ticks: { color: colors.muted, callback: (value) => usd(Number(value)) },
            grid: { color: colors.grid },
          },
          images: {
            position: "right",
            beginAtZero: true,
            title: { display: true, text: "images", color: colors.muted },
            ticks: { color: colors.muted, precision: 0 },
            grid: { display: false },
          },
        },
      },
    }),
    [days, colors],
  );

  const active = days.filter((day) => day.requests > 0);
  const total = sum(days);
  const busiest = active.reduce<DayTotal | null>(
    (best, day) => (best === null || day.images > best.images ? day : best),
    null,
  );
  const summary =
    `Spend and images per day, ${days[0]?.date ?? ""} to ${days.at(-1)?.date ?? ""}: ` +
    `${usd(total.cost)} spent on ${total.images} images in ${total.requests} requests` +
    (busiest ? `; most images on ${busiest.date} (${busiest.images}).` : ".");

  return (
    <section class="card usage-chart-block" aria-labelledby="usage-day-title">
      <h2 id="usage-day-title">Per day</h2>
      <div class="usage-chart-pair">
        <div class="usage-canvas">
          <canvas ref={canvas} role="img" aria-label={summary} />
        </div>
        <div class="usage-figures">
          <FiguresTable
            caption="Requests, images and spend per day (UTC)"
            first="Date"
            rows={active.map((day) => ({ ...day, key: day.date, label: day.date }))}
          />
        </div>
      </div>
    </section>
  );
}

export function sum(totals: { requests: number; images: number; cost: number }[]) {
  return totals.reduce(
    (all, item) => ({
      requests: all.requests + item.requests,
      images: all.images + item.images,
      cost: all.cost + item.cost,
    }),
    { requests: 0, images: 0, cost: 0 },
  );
}
