/** Spend or images per model as horizontal bars, and the table of every model's figures. */
import { useState } from "preact/hooks";
import { usd } from "../components.tsx";
import { baseOptions, useChart, useChartColors } from "./chart-setup.ts";
import { FiguresTable } from "./figures-table.tsx";
import type { ModelTotal } from "./types.ts";

type Metric = "cost" | "images";

export function ModelChart({ models }: { models: ModelTotal[] }) {
  const colors = useChartColors();
  // Free models (the placeholder) spend nothing: show images until something costs money.
  const [chosen, setChosen] = useState<Metric | null>(null);
  const metric: Metric = chosen ?? (models.some((model) => model.cost > 0) ? "cost" : "images");
  const sorted = [...models].sort((a, b) => b[metric] - a[metric] || b.requests - a.requests);
  const label = metric === "cost" ? "Spend (USD)" : "Images";
  const color = metric === "cost" ? colors.spend : colors.images;

  const canvas = useChart(
    () => ({
      type: "bar",
      data: {
        labels: sorted.map((model) => model.model),
        datasets: [
          {
            label,
            data: sorted.map((model) => model[metric]),
            backgroundColor: color,
            maxBarThickness: 28,
          },
        ],
      },
      options: {
        ...baseOptions(colors),
        indexAxis: "y",
        plugins: { legend: { display: false } },
        scales: {
          x: {
            beginAtZero: true,
            ticks: {
              color: colors.muted,
              precision: metric === "images" ? 0 : undefined,
              callback: (value) => (metric === "cost" ? usd(Number(value)) : String(value)),
            },
            grid: { color: colors.grid },
          },
          y: { ticks: { color: colors.text }, grid: { display: false } },
        },
      },
    }),
    [models, metric, colors],
  );

  const figure = (model: ModelTotal) =>
    metric === "cost" ? usd(model.cost) : `${model.images} images`;
  const summary =
    sorted.length === 0
      ? "No requests per model in this range."
      : `${label} per model: ${sorted
          .slice(0, 5)
          .map((model) => `${model.model} ${figure(model)}`)
          .join(", ")}${sorted.length > 5 ? `, and ${sorted.length - 5} more` : ""}.`;

  return (
    <section class="card usage-chart-block" aria-labelledby="usage-model-title">
      <div class="usage-chart-head">
        <h2 id="usage-model-title">Per model</h2>
        <fieldset class="usage-metric">
          <legend class="usage-sr-only">Chart</legend>
          {(["cost", "images"] as const).map((option) => (
            <label class="check" key={option}>
              <input
                type="radio"
                name="usage-metric"
                checked={metric === option}
                onChange={() => setChosen(option)}
              />
              {option === "cost" ? "Spend" : "Images"}
            </label>
          ))}
        </fieldset>
      </div>
      <div class="usage-chart-pair">
        <div class="usage-canvas" style={{ height: `${Math.max(160, 48 + sorted.length * 32)}px` }}>
          <canvas ref={canvas} role="img" aria-label={summary} />
        </div>
        <div class="usage-figures usage-figures-all">
          <FiguresTable
            caption="Requests, images and spend per model"
            first="Model"
            rows={sorted.map((model) => ({
              ...model,
              key: model.model,
              label: breakable(model.model),
            }))}
          />
        </div>
      </div>
    </section>
  );
}

/** A model id that may wrap after its slashes (`local/<wbr>placeholder`) rather than mid-word. */
function breakable(id: string) {
  return id.split("/").map((part, index) => (
    <span key={index}>
      {index > 0 && (
        <>
          /<wbr />
        </>
      )}
      {part}
    </span>
  ));
}
