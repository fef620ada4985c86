// The run page while its run is active: every figure of the summary, and the counters of "All fields",
// asked for every two seconds from the run's progress endpoint (JSON); the page shows itself again when
// the run's status changes (started, ended), so its pages and failing objects are current too.
(function () {
  "use strict";
  const script = document.querySelector("script[data-progress-url]");
  const url = script.dataset.progressUrl;
  const initial = JSON.parse(document.getElementById("run-live").textContent);

  function shown(value) {
    if (value === null || value === undefined || value === "") return "-";
    return typeof value === "number" ? value.toLocaleString("en-US") : String(value);
  }

  function show(live) {
    const bar = document.getElementById("run-progress");
    if (live.totalKnown) {
      bar.max = Math.max(live.found, 1);
      bar.value = live.done;
    } else {
      bar.removeAttribute("value"); // indeterminate: the source is still being read, the total unknown
    }
    document.getElementById("run-progress-text").textContent = live.text;
    document.querySelectorAll("#run-summary [data-live]").forEach(function (cell) {
      cell.textContent = shown(live[cell.dataset.live]);
    });
    document.querySelectorAll("#run-summary [data-count]").forEach(function (cell) {
      const value = live.counts[cell.dataset.count];
      cell.textContent = shown(value);
      cell.classList.toggle("run-count-bad", ["failed", "invalid"].includes(cell.dataset.count) && value > 0);
    });
    document.querySelectorAll("#run-summary [data-field]").forEach(function (cell) {
      cell.textContent = shown(live.fields[cell.dataset.field]);
    });
    Object.entries(live.fields).forEach(function ([name, value]) {
      const cell = document.querySelector(".field-" + name + " .readonly");
      if (cell) cell.textContent = typeof value === "number" ? String(value) : shown(value);
    });
  }

  function poll() {
    fetch(url, {credentials: "same-origin"})
      .then(function (answer) { return answer.json(); })
      .then(function (live) {
        show(live);
        if (live.status !== initial.status) location.reload();
        else if (live.active) setTimeout(poll, 2000);
      })
      .catch(function () { setTimeout(poll, 5000); });
  }

  poll();
})();
