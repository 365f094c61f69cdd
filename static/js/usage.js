// The /usage/ chart: daily estimated spend by model, from the page's json_script data.
// A classic script after the vendored Chart.js UMD build (window.Chart); no inline code.
(function () {
  "use strict";
  const source = document.getElementById("usage-chart-data");
  const canvas = document.getElementById("usage-chart");
  if (!source || !canvas || !window.Chart) return;
  const data = JSON.parse(source.textContent);
  const palette = ["#6d5ce7", "#e17055", "#00b894", "#0984e3", "#fdcb6e", "#d63031"];
  const chart = new window.Chart(canvas, {
    type: "bar",
    data: {
      labels: data.days,
      datasets: data.series.map((s, i) => ({
        label: s.model,
        data: s.cost,
        backgroundColor: palette[i % palette.length],
        stack: "spend",
      })),
    },
    options: {
      responsive: true,
      animation: false,
      scales: {
        x: { stacked: true },
        y: { stacked: true, beginAtZero: true, title: { display: true, text: "USD" } },
      },
      plugins: { legend: { position: "bottom" } },
    },
  });
  canvas.dataset.ready = "1";
  window.usageChart = chart;
})();
