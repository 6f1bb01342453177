/* Softserve web UI behaviours: charts from JSON islands, upload progress and column guessing,
   drag-and-drop, copy buttons. Everything else is server-rendered HTML swapped in by htmx. */
(function () {
  "use strict";
  const charts = {};

  function chartConfig(spec) {
    // spec: {type, labels, datasets:[{label, data}], x, y, yMin, yMax} -> a Chart.js config
    const palette = ["#0b5cad", "#c2410c", "#15803d", "#7c3aed", "#b91c1c", "#0e7490"];
    const datasets = spec.datasets.map(function (d, i) {
      return Object.assign({ borderColor: palette[i % palette.length], backgroundColor: palette[i % palette.length],
        pointRadius: spec.type === "line" ? 1.5 : 0, borderWidth: 2, tension: 0.15, spanGaps: true }, d);
    });
    const scales = {};
    if (spec.type === "scatter" || spec.linear) {
      scales.x = { type: "linear", title: { display: !!spec.x, text: spec.x || "" } };
    } else {
      scales.x = { title: { display: !!spec.x, text: spec.x || "" } };
    }
    scales.y = { title: { display: !!spec.y, text: spec.y || "" }, beginAtZero: spec.type === "bar" };
    // A fixed range where the values have one (a share: 0 to 1), so one flat series is not zoomed into.
    if (typeof spec.yMin === "number") { scales.y.min = spec.yMin; }
    if (typeof spec.yMax === "number") { scales.y.max = spec.yMax; }
    if (spec.datasets.some(function (d) { return d.stack; })) { scales.x.stacked = true; scales.y.stacked = true; }
    if (spec.y2) { scales.y2 = { position: "right", title: { display: true, text: spec.y2 }, grid: { drawOnChartArea: false } }; }
    return {
      type: spec.type === "scatter" ? "line" : spec.type,
      data: { labels: spec.labels, datasets: datasets },
      options: { responsive: true, maintainAspectRatio: false, animation: false, parsing: spec.parsing !== false,
        plugins: { legend: { display: datasets.length > 1 } }, scales: scales },
    };
  }

  function drawCharts(root) {
    if (!window.Chart) { return; }
    // Each chart's data is a data-json attribute named after its canvas: <canvas id=X> + <div id=X-data>
    // (not a script island: htmx, with allowScriptTags off, drops script elements from swapped HTML).
    root.querySelectorAll('[data-json][id$="-data"]').forEach(function (island) {
      const id = island.id.slice(0, -5);
      const canvas = document.getElementById(id);
      if (!canvas) { return; }
      const spec = JSON.parse(island.getAttribute("data-json"));
      const existing = charts[id];
      if (existing && existing.canvas === canvas) {
        const next = chartConfig(spec);
        existing.options = next.options;  // axis titles and the legend follow the series present now
        existing.data.labels = next.data.labels;
        next.data.datasets.forEach(function (d, i) {
          if (existing.data.datasets[i]) { existing.data.datasets[i].data = d.data; } else { existing.data.datasets.push(d); }
        });
        existing.update("none");
      } else {
        if (existing) { existing.destroy(); }
        charts[id] = new window.Chart(canvas, chartConfig(spec));
      }
      canvas.setAttribute("data-points", String(spec.datasets.reduce(function (n, d) { return n + d.data.length; }, 0)));
    });
  }
  window.softserveCharts = charts;

  function splitHeader(line, sep) {
    // The header line of a CSV: quoted names may hold the separator.
    const out = []; let cur = ""; let quoted = false;
    for (let i = 0; i < line.length; i++) {
      const c = line[i];
      if (c === '"') { if (quoted && line[i + 1] === '"') { cur += '"'; i++; } else { quoted = !quoted; } }
      else if (c === sep && !quoted) { out.push(cur.trim()); cur = ""; }
      else { cur += c; }
    }
    out.push(cur.trim());
    return out.filter(function (x) { return x.length; });
  }

  function guessColumns(file, form) {
    const reader = new FileReader();
    reader.onload = function () {
      const text = String(reader.result || "");
      const first = text.split(/\r?\n/)[0] || "";
      const name = file.name.toLowerCase();
      let header = [];
      if (name.endsWith(".jsonl") || name.endsWith(".ndjson")) {
        try { header = Object.keys(JSON.parse(first)); } catch (e) { header = []; }
      } else {
        header = splitHeader(first, name.endsWith(".tsv") || name.endsWith(".tab") ? "\t" : ",");
      }
      const found = form.querySelector("[data-columns-found]");
      if (found) { found.textContent = header.length ? "Columns found: " + header.join(", ") : "No header found in the file's first line."; }
      const set = function (field, value) { const el = form.elements[field]; if (el && !el.dataset.touched) { el.value = value; } };
      const lower = header.map(function (h) { return h.toLowerCase(); });
      const label = header[lower.indexOf("label")] || header[lower.indexOf("labels")] || header[lower.indexOf("target")] || header[header.length - 1] || "";
      const split = header[lower.indexOf("split")] || "";
      let texts = [];
      if (lower.indexOf("text") >= 0) { texts = [header[lower.indexOf("text")]]; }
      else if (lower.indexOf("text_a") >= 0 && lower.indexOf("text_b") >= 0) { texts = [header[lower.indexOf("text_a")], header[lower.indexOf("text_b")]]; }
      else { texts = header.filter(function (h) { return h !== label && h !== split; }).slice(0, 2); }
      set("text_columns", texts.join(","));
      set("label_column", label);
      set("split_column", split);
      const nameField = form.elements["name"];
      if (nameField && !nameField.value) { nameField.value = file.name.replace(/\.[^.]+$/, "").replace(/[^A-Za-z0-9_.-]/g, "-").slice(0, 100); }
    };
    reader.readAsText(file.slice(0, 65536));
  }

  function wireUpload(root) {
    root.querySelectorAll("form[data-upload]").forEach(function (form) {
      if (form.dataset.wired) { return; }
      form.dataset.wired = "1";
      const input = form.querySelector("input[type=file]");
      const zone = form.querySelector(".dropzone");
      ["text_columns", "label_column", "split_column"].forEach(function (f) {
        const el = form.elements[f]; if (el) { el.addEventListener("input", function () { el.dataset.touched = "1"; }); }
      });
      // A kept file input (hx-preserve after a refusal) moves into the new form with its listener: it
      // fills whichever form holds it now, and is wired once.
      if (!input.dataset.wired) {
        input.dataset.wired = "1";
        input.addEventListener("change", function () { if (input.files[0] && input.form) { guessColumns(input.files[0], input.form); } });
      }
      if (zone) {
        zone.addEventListener("dragover", function (e) { e.preventDefault(); zone.classList.add("over"); });
        zone.addEventListener("dragleave", function () { zone.classList.remove("over"); });
        zone.addEventListener("drop", function (e) {
          e.preventDefault(); zone.classList.remove("over");
          if (e.dataTransfer.files.length) { input.files = e.dataTransfer.files; input.dispatchEvent(new Event("change")); }
        });
      }
    });
  }

  document.addEventListener("htmx:xhr:progress", function (e) {
    const form = e.target.closest ? e.target.closest("form[data-upload]") : null;
    if (!form || !e.detail.lengthComputable) { return; }
    const bar = form.querySelector("progress");
    const text = form.querySelector("[data-progress-text]");
    bar.max = e.detail.total; bar.value = e.detail.loaded;
    if (text) { text.textContent = Math.round(100 * e.detail.loaded / e.detail.total) + "% sent (" + e.detail.loaded + " of " + e.detail.total + " bytes)"; }
  });

  document.addEventListener("click", function (e) {
    const button = e.target.closest("[data-copy]");
    if (!button) { return; }
    const source = document.getElementById(button.getAttribute("data-copy"));
    if (source && navigator.clipboard) {
      navigator.clipboard.writeText(source.textContent.trim()).then(function () { button.textContent = "Copied"; });
    }
  });

  function applyWidths(root) {
    // Sizes computed on the server arrive as data attributes (the Content-Security-Policy refuses inline
    // style attributes); set through the CSSOM, which the policy allows.
    root.querySelectorAll("[data-width]").forEach(function (el) { el.style.width = el.getAttribute("data-width") + "%"; });
    root.querySelectorAll("[data-share]").forEach(function (el) { el.style.setProperty("--share", el.getAttribute("data-share")); });
  }

  function init(root) { applyWidths(root); drawCharts(root); wireUpload(root); }
  document.addEventListener("DOMContentLoaded", function () { init(document); });
  document.addEventListener("htmx:afterSettle", function (e) { init(e.target.ownerDocument ? document : e.target); });
})();
