/**
 * Chart.js with only the pieces the usage charts use, and colours taken from the page's CSS
 * variables so the charts read in light and dark mode alike (and follow a switch between them).
 */
import {
  BarController,
  BarElement,
  CategoryScale,
  Chart,
  type ChartConfiguration,
  Legend,
  LinearScale,
  LineController,
  LineElement,
  PointElement,
  Tooltip,
} from "chart.js";
import type { RefObject } from "preact";
import { useEffect, useRef, useState } from "preact/hooks";

Chart.register(
  BarController,
  BarElement,
  LineController,
  LineElement,
  PointElement,
  CategoryScale,
  LinearScale,
  Tooltip,
  Legend,
);

export interface ChartColors {
  spend: string;
  images: string;
  text: string;
  muted: string;
  grid: string;
}

function readColors(): ChartColors {
  const style = getComputedStyle(document.documentElement);
  const color = (name: string, fallback: string) => style.getPropertyValue(name).trim() || fallback;
  return {
    spend: color("--accent", "#2f4fcf"),
    images: color("--ok", "#1b6b3a"),
    text: color("--text", "#1b1e24"),
    muted: color("--muted", "#525a66"),
    grid: color("--border", "#cfd4dc"),
  };
}

export function useChartColors(): ChartColors {
  const [colors, setColors] = useState(readColors);
  useEffect(() => {
    const media = matchMedia("(prefers-color-scheme: dark)");
    const change = () => setColors(readColors());
    media.addEventListener("change", change);
    return () => media.removeEventListener("change", change);
  }, []);
  return colors;
}

/**
 * A chart drawn on the canvas `ref` gives, made again whenever `deps` change and destroyed
 * before that and on unmount (Chart.js keeps the canvas otherwise, and refuses to reuse it).
 */
export function useChart(
  build: () => ChartConfiguration<"bar" | "line">,
  deps: unknown[],
): RefObject<HTMLCanvasElement> {
  const canvas = useRef<HTMLCanvasElement>(null);
  useEffect(() => {
    if (!canvas.current) return;
    const chart = new Chart(canvas.current, build());
    return () => chart.destroy();
  }, deps);
  return canvas;
}

/** Axis and legend colours shared by both charts. */
export function baseOptions(colors: ChartColors) {
  return {
    responsive: true,
    maintainAspectRatio: false,
    animation: false as const,
    color: colors.text,
    plugins: { legend: { labels: { color: colors.text } } },
  };
}
