// Charts (Chart.js): events over time, and shares as bars and pies. Labels are drawn on a
// canvas, so attacker text in them is never markup.

import {
  ArcElement, BarController, BarElement, CategoryScale, Chart, DoughnutController, Legend,
  LinearScale, PieController, Tooltip, type ChartConfiguration,
} from "chart.js";

Chart.register(BarController, BarElement, CategoryScale, LinearScale, Tooltip, Legend,
               PieController, DoughnutController, ArcElement);

export const PALETTE = ["#0ea5e9", "#f97316", "#22c55e", "#a855f7", "#ef4444", "#eab308",
                        "#14b8a6", "#ec4899", "#6366f1", "#84cc16", "#64748b", "#f43f5e",
                        "#06b6d4", "#d946ef", "#78716c", "#10b981"];

function themed(): void {
  const css = getComputedStyle(document.documentElement);
  Chart.defaults.color = css.getPropertyValue("--muted").trim() || "#64748b";
  Chart.defaults.borderColor = css.getPropertyValue("--line").trim() || "#e5e7eb";
  Chart.defaults.font.family = css.getPropertyValue("--font").trim() || "system-ui, sans-serif";
  Chart.defaults.animation = false;
}

export function timeChart(canvas: HTMLCanvasElement, labels: string[], values: number[]): Chart {
  themed();
  const config: ChartConfiguration<"bar"> = {
    type: "bar",
    data: { labels, datasets: [{ label: "events", data: values, backgroundColor: "#0ea5e9", borderRadius: 2, barPercentage: 1, categoryPercentage: 0.9 }] },
    options: {
      responsive: true, maintainAspectRatio: false,
      plugins: { legend: { display: false } },
      scales: { x: { ticks: { maxTicksLimit: 8, maxRotation: 0 }, grid: { display: false } }, y: { beginAtZero: true, ticks: { precision: 0 } } },
    },
  };
  return new Chart(canvas, config);
}

export function barChart(canvas: HTMLCanvasElement, labels: string[], values: number[],
                         format: (n: number) => string): Chart {
  themed();
  return new Chart(canvas, {
    type: "bar",
    data: { labels, datasets: [{ data: values, backgroundColor: labels.map((_, i) => PALETTE[i % PALETTE.length]) }] },
    options: {
      indexAxis: "y", responsive: true, maintainAspectRatio: false,
      plugins: { legend: { display: false }, tooltip: { callbacks: { label: (c) => format(Number(c.raw)) } } },
      scales: { x: { beginAtZero: true, ticks: { callback: (v) => format(Number(v)) } } },
    },
  });
}

export function pieChart(canvas: HTMLCanvasElement, labels: string[], values: number[],
                         format: (n: number) => string): Chart {
  themed();
  return new Chart(canvas, {
    type: "doughnut",
    data: { labels, datasets: [{ data: values, backgroundColor: labels.map((_, i) => PALETTE[i % PALETTE.length]), borderWidth: 1 }] },
    options: {
      responsive: true, maintainAspectRatio: false,
      plugins: {
        legend: { position: "right", labels: { boxWidth: 12 } },
        tooltip: { callbacks: { label: (c) => `${c.label}: ${format(Number(c.raw))}` } },
      },
    },
  });
}
