// Charts for plugin pages: Vega and Vega-Lite, evaluated by vega-interpreter.
//
// The pages' Content-Security-Policy has no 'unsafe-eval', and Vega compiles its
// expressions with the Function constructor unless it is parsed with {ast: true} and run
// with an expression interpreter. Always go through renderChart / vegaView below (or do
// the same yourself): a plain `new vega.View(vega.parse(spec))` fails on this CSP.
//
//   import {renderChart} from "/_app/vendor/charts.js";
//   const view = await renderChart(document.getElementById("chart"), vegaLiteSpec);
//   view.data("table", rows).runAsync();   // the Vega View API from then on

import * as vega from "vega";
import * as vegaLite from "vega-lite";
import {expressionInterpreter} from "vega-interpreter";

export {vega, vegaLite, expressionInterpreter};

// Readable on the app's dark background; the pages' CSS already decides light or dark.
const DARK_CONFIG = {
  background: null,
  view: {stroke: "#3a414d"},
  title: {color: "#e6e8eb", subtitleColor: "#aab1bd"},
  style: {"guide-label": {fill: "#c4c9d1"}, "guide-title": {fill: "#e6e8eb"}},
  axis: {domainColor: "#6b7380", gridColor: "#2e343e", tickColor: "#6b7380"},
};
const LIGHT_CONFIG = {background: null};

/** "dark" or "light", as the app marks the page (data-theme), else as the system says. */
export function pageTheme() {
  const marked = document.documentElement.dataset.theme;
  if (marked === "dark" || marked === "light") return marked;
  return globalThis.matchMedia && matchMedia("(prefers-color-scheme: dark)").matches
    ? "dark" : "light";
}

/** True for a Vega-Lite spec (its $schema says so, or it has no Vega-only top level). */
export function isVegaLite(spec) {
  const schema = String(spec.$schema || "");
  if (schema) return schema.includes("vega-lite");
  return !("marks" in spec || "signals" in spec || "scales" in spec);
}

/**
 * A Vega View for `spec` (Vega or Vega-Lite), parsed and evaluated without eval.
 * Options: renderer ("svg", the default, or "canvas"), theme ("auto", "light", "dark"),
 * config (merged over the theme's), and anything else the Vega View constructor takes.
 * The view is not attached or run: see renderChart for that.
 */
export function vegaView(spec, options = {}) {
  const {renderer = "svg", theme = "auto", config = {}, ...viewOptions} = options;
  const themeConfig = (theme === "auto" ? pageTheme() : theme) === "dark"
    ? DARK_CONFIG : LIGHT_CONFIG;
  const lite = isVegaLite(spec);
  // Layout again on every update (Vega's default lays out once): a chart whose data
  // arrives later (view.insert, view.data) would otherwise keep the size of its empty
  // first drawing and cut its axes off. A spec's own autosize wins.
  const autosize = {autosize: lite ? {resize: true} : {type: "pad", resize: true}};
  const merged = vega.mergeConfig(autosize, themeConfig, config);
  const vegaSpec = lite ? vegaLite.compile(spec, {config: merged}).spec : spec;
  const runtime = vega.parse(vegaSpec, lite ? null : merged, {ast: true});
  return new vega.View(runtime, {
    renderer, hover: true, ...viewOptions, expr: expressionInterpreter,
  });
}

/**
 * Draw `spec` (Vega or Vega-Lite) into `element` and resolve to its Vega View once it is
 * drawn. An earlier chart in the element is finalized and replaced. Errors (an invalid
 * spec, data that fails to load) reject the promise; show them on the page.
 */
export async function renderChart(element, spec, options = {}) {
  if (element.__plexichatView) element.__plexichatView.finalize();
  element.replaceChildren();
  const view = vegaView(spec, options);
  element.__plexichatView = view;
  await view.initialize(element).runAsync();
  return view;
}
