// arbiter dashboard: draws the charts a live fragment carries, and sends canary actions.
// Plotly (served by arbiter from the plotly package) draws; htmx refreshes the fragments.
(function () {
  "use strict";
  var TOKEN_KEY = "arbiter.adminToken";

  function drawFigures() {
    var holder = document.querySelector("#live script.arbiter-figures");
    var charts = document.querySelector("[data-charts]");
    if (!holder || !charts || !window.Plotly) { return; }
    // [[id, figure], ...]: in the order the server chose.
    JSON.parse(holder.textContent).forEach(function (pair) {
      var id = pair[0];
      var fig = pair[1];
      var div = document.getElementById("chart-" + id);
      if (!div) {
        div = document.createElement("div");
        div.id = "chart-" + id;
        div.className = "chart";
        div.dataset.figure = id;
        charts.appendChild(div);
      }
      window.Plotly.react(div, fig.data, fig.layout, { displaylogo: false, responsive: true });
    });
  }

  function tokenState() {
    var state = document.getElementById("token-state");
    if (state) {
      state.textContent = sessionStorage.getItem(TOKEN_KEY) ? "token set for this session" : "no token yet";
    }
  }

  function show(text, ok) {
    var out = document.getElementById("action-result");
    out.textContent = text;
    out.className = ok ? "done" : "refused";
  }

  function act(button) {
    var section = button.closest("[data-model]");
    var action = button.dataset.action;
    var token = sessionStorage.getItem(TOKEN_KEY);
    if (!token) { show("enter the admin token first", false); return; }
    if (button.dataset.confirm && !window.confirm(button.dataset.confirm)) { return; }
    var reason = document.getElementById("action-reason").value;
    var body = reason ? JSON.stringify({ reason: reason }) : "";
    fetch("/api/models/" + encodeURIComponent(section.dataset.model) + "/canary/" + action, {
      method: "POST",
      headers: { "Authorization": "Bearer " + token, "Content-Type": "application/json" },
      body: body
    }).then(function (r) {
      return r.json().catch(function () { return {}; }).then(function (data) {
        if (r.ok) {
          show(action + ": " + (data.unchanged ? "nothing to do, " + data.unchanged : "done"), true);
        } else {
          var message = (data.error && data.error.message) || r.statusText;
          show(action + " refused (" + r.status + "): " + message, false);
        }
        if (window.htmx) { window.htmx.trigger("#live", "refresh"); }
      });
    }).catch(function (e) { show(action + " failed: " + e, false); });
  }

  document.addEventListener("DOMContentLoaded", function () {
    drawFigures();
    tokenState();
    var form = document.getElementById("token-form");
    if (form) {
      form.addEventListener("submit", function (e) {
        e.preventDefault();
        var input = document.getElementById("admin-token");
        if (input.value) { sessionStorage.setItem(TOKEN_KEY, input.value); }
        input.value = "";  // never left in the page
        tokenState();
      });
    }
    document.querySelectorAll("#canary-actions button[data-action]").forEach(function (b) {
      b.addEventListener("click", function () { act(b); });
    });
  });
  document.addEventListener("htmx:afterSettle", drawFigures);
})();
