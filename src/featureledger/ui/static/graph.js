// The lineage graph: Cytoscape.js (bundled, see scripts/bundle-ui-assets.sh) over the
// elements the server put in #graph-data. A tap on a node opens its page. The instance is
// window.flGraph, so tests (and curious users) can read what is drawn.
(function () {
  "use strict";
  var box = document.getElementById("graph");
  var data = JSON.parse(document.getElementById("graph-data").textContent);
  var colors = {
    source: "#8d6e63", feature_group: "#1f5fbf", data_version: "#7fa7e0",
    feature_view: "#00897b", training_dataset: "#f9a825", model: "#8e24aa",
    deployment: "#c62828", run: "#9e9e9e"
  };
  var elements = [];
  data.nodes.forEach(function (n) {
    elements.push({ group: "nodes", data: { id: n.id, kind: n.kind, label: n.label, href: n.href,
      color: colors[n.kind] || "#607d8b" }, classes: n.focus ? "focus" : "" });
  });
  data.edges.forEach(function (e) {
    elements.push({ group: "edges", data: { id: e.id, source: e.source, target: e.target, kind: e.kind } });
  });
  var cy = cytoscape({
    container: box,
    elements: elements,
    wheelSensitivity: 0.3,
    style: [
      { selector: "node", style: { "background-color": "data(color)", "label": "data(label)",
        "font-size": 10, "text-valign": "bottom", "text-margin-y": 3, "width": 18, "height": 18,
        "color": "#1d2330", "text-wrap": "ellipsis", "text-max-width": 140 } },
      { selector: "node.focus", style: { "border-width": 4, "border-color": "#111", "width": 26, "height": 26 } },
      { selector: "edge", style: { "width": 1.2, "line-color": "#b8c2cc", "target-arrow-color": "#b8c2cc",
        "target-arrow-shape": "triangle", "curve-style": "bezier", "arrow-scale": 0.8 } }
    ],
    layout: { name: "preset" }
  });
  // sources on top, deployments at the bottom: the roots are the nodes nothing points to
  cy.layout({ name: "breadthfirst", directed: true, spacingFactor: 1.1, padding: 20,
    roots: cy.nodes().roots() }).run();
  cy.on("tap", "node", function (evt) {
    var href = evt.target.data("href");
    if (href) { window.location.assign(href); }
  });
  cy.on("mouseover", "node", function () { box.classList.add("pointer"); });
  cy.on("mouseout", "node", function () { box.classList.remove("pointer"); });
  window.flGraph = cy;
  box.setAttribute("data-ready", "1");
}());
