// Loading progress and error reporting while Python starts. No image arithmetic
// here: the Python page code (app/*.py) takes over the status line as soon as
// it runs, and this file only keeps the clock, catches errors and gives up
// with a readable message if the runtime never starts.
"use strict";
(() => {
  const STARTUP_LIMIT_S = 120;
  const started = performance.now();
  const $ = (id) => document.getElementById(id);

  function showError(title, detail) {
    const box = $("error");
    if (!box) return;
    box.hidden = false;
    box.querySelector(".error-title").textContent = title;
    const pre = box.querySelector(".error-detail");
    pre.textContent = detail || "";
    pre.hidden = !detail;
    document.body.dataset.phase = document.body.dataset.phase === "ready" ? "ready" : "failed";
  }
  window.diffusionLabShowError = showError;

  const tick = setInterval(() => {
    const seconds = (performance.now() - started) / 1000;
    const elapsed = $("elapsed");
    if (elapsed) elapsed.textContent = `${seconds.toFixed(1)} s`;
    const phase = document.body.dataset.phase;
    if (phase === "ready" || phase === "failed") {
      clearInterval(tick);
    } else if (seconds > STARTUP_LIMIT_S && (!phase || phase === "runtime")) {
      clearInterval(tick);
      showError(
        "Python did not start.",
        `The Python runtime was still loading after ${STARTUP_LIMIT_S} seconds. ` +
          "If you host this site yourself, check that .wasm files are served as " +
          "application/wasm and that the pyodide/ folder was copied completely; " +
          "otherwise reload the page on a faster connection."
      );
    }
  }, 100);

  window.addEventListener("error", (event) => {
    const where = event.filename ? ` (${event.filename.split("/").pop()}:${event.lineno})` : "";
    showError("Something went wrong.", `${event.message || event.error || "unknown error"}${where}`);
  });
  window.addEventListener("unhandledrejection", (event) => {
    const reason = event.reason;
    showError("Something went wrong while loading.", String((reason && (reason.message || reason)) || "unknown error"));
  });
  // PyScript reports Python errors that escape the page code here.
  window.addEventListener("py:error", (event) => showError("Python error.", String(event.detail || "")));
})();
