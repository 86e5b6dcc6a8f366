// Builds the vendor bundles that plugin pages load from /_app/vendor/ (see README.md).
//
//   node build.mjs           write ../resources/web/vendor/{name}.js and
//                            {name}.LICENSES.txt
//   node build.mjs --check   build into a temporary folder and compare with the committed
//                            files; exit 1 naming each file that differs
//
// Run `npm ci` first: the bundles are what package-lock.json resolves to. The output
// depends only on the sources and the locked packages (no dates, no absolute paths), so
// two builds give the same bytes and --check can tell a stale bundle from a fresh one.

import {build, version as esbuildVersion} from "esbuild";
import {mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync, existsSync,
  mkdirSync} from "node:fs";
import {tmpdir} from "node:os";
import {dirname, join, relative, sep} from "node:path";
import {fileURLToPath} from "node:url";

const HERE = dirname(fileURLToPath(import.meta.url));
const OUT = join(HERE, "..", "resources", "web", "vendor");

// name -> entry and the packages named in its banner (the rest are their dependencies).
const BUNDLES = {
  charts: {entry: "src/charts.js", main: ["vega", "vega-lite", "vega-interpreter"]},
  editor: {
    entry: "src/editor.js",
    main: ["@codemirror/view", "@codemirror/state", "yjs", "y-codemirror.next",
      "y-protocols"],
  },
};

// d3-dsv (Vega's CSV/TSV parser) builds each row object with `new Function`, which the
// pages' CSP forbids: a chart with CSV data would throw EvalError. Same result, no eval.
const DSV_EVAL = /function objectConverter\(columns\) \{\n  return new Function\("d", "return \{" \+ columns\.map\(function\(name, i\) \{\n    return JSON\.stringify\(name\) \+ ": d\[" \+ i \+ "\] \|\| \\"\\""; ?\n  \}\)\.join\(","\) \+ "\}"\);\n\}/;
const DSV_SAFE = `function objectConverter(columns) {
  return function(d) {
    var o = {};
    for (var i = 0; i < columns.length; ++i) o[columns[i]] = d[i] || "";
    return o;
  };
}`;

const cspSafeDsv = {
  name: "csp-safe-d3-dsv",
  setup(b) {
    b.onLoad({filter: /[\\/]d3-dsv[\\/].*\.m?js$/}, (args) => {
      const source = readFileSync(args.path, "utf8");
      if (!source.includes("new Function")) return {contents: source, loader: "js"};
      if (!DSV_EVAL.test(source)) {
        throw new Error(`${args.path}: d3-dsv changed; update the CSP patch in build.mjs`);
      }
      return {contents: source.replace(DSV_EVAL, DSV_SAFE), loader: "js"};
    });
  },
};

function packageOf(input) {
  // "node_modules/@scope/name/..." or "node_modules/name/..." -> the package's folder
  const parts = input.split(/[\\/]/);
  const at = parts.lastIndexOf("node_modules");
  if (at < 0) return null;
  const n = parts[at + 1].startsWith("@") ? 2 : 1;
  return parts.slice(0, at + 1 + n).join("/");
}

const LICENCE_FILE = /^(licen[cs]e|copying|notice)(\.(md|txt|markdown))?$/i;

function licences(folders) {
  const seen = new Map();
  for (const folder of folders) {
    const meta = JSON.parse(readFileSync(join(HERE, folder, "package.json"), "utf8"));
    const texts = readdirSync(join(HERE, folder)).filter((f) => LICENCE_FILE.test(f)).sort()
      .map((f) => readFileSync(join(HERE, folder, f), "utf8").trim());
    if (!texts.length) {
      throw new Error(`${meta.name} ${meta.version} has no licence file: add its text by hand`);
    }
    seen.set(`${meta.name}@${meta.version}`, {meta, texts});
  }
  return [...seen.entries()].sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
}

function versionOf(name) {
  return JSON.parse(readFileSync(join(HERE, "node_modules", name, "package.json"), "utf8"))
    .version;
}

async function buildOne(name, spec, outDir) {
  const main = spec.main.map((p) => `${p} ${versionOf(p)}`).join(", ");
  const banner = `/*! PlexiChat Desktop vendor bundle "${name}": ${main}; the other packages `
    + `and every licence: ${name}.LICENSES.txt. Built from web-src/ (package-lock.json) `
    + `by esbuild ${esbuildVersion}. */`;
  const result = await build({
    absWorkingDir: HERE,
    entryPoints: [spec.entry],
    outfile: join(outDir, `${name}.js`),
    bundle: true,
    format: "esm",
    platform: "browser",
    target: ["es2022"],
    minify: true,
    charset: "utf8",
    legalComments: "none", // the licences are in the .LICENSES.txt file next to the bundle
    banner: {js: banner},
    metafile: true,
    logLevel: "warning",
    plugins: [cspSafeDsv],
  });
  const folders = new Set();
  for (const input of Object.keys(result.metafile.inputs)) {
    const folder = packageOf(input);
    if (folder) folders.add(folder.split(sep).join("/"));
  }
  const entries = licences(folders);
  const lines = [
    `Third-party software in ${name}.js (${entries.length} packages), with their licences.`,
    "Rebuilt from web-src/ in the PlexiChat Desktop repository: npm ci && npm run build.",
    "",
    ...entries.map(([id, {meta}]) => `  ${id}  ${meta.license || "(see below)"}`),
  ];
  for (const [id, {meta, texts}] of entries) {
    lines.push("", "=".repeat(78), `${id}  ${meta.license || ""}`.trim(),
      meta.homepage || "", "-".repeat(78), ...texts);
  }
  writeFileSync(join(outDir, `${name}.LICENSES.txt`), lines.join("\n") + "\n");
  return [`${name}.js`, `${name}.LICENSES.txt`];
}

async function buildAll(outDir) {
  mkdirSync(outDir, {recursive: true});
  const files = [];
  for (const [name, spec] of Object.entries(BUNDLES)) {
    files.push(...await buildOne(name, spec, outDir));
  }
  return files;
}

if (process.argv.includes("--check")) {
  const temp = mkdtempSync(join(tmpdir(), "plexichat-vendor-"));
  try {
    const files = await buildAll(temp);
    const stale = files.filter((f) => !existsSync(join(OUT, f))
      || !readFileSync(join(OUT, f)).equals(readFileSync(join(temp, f))));
    if (stale.length) {
      console.error(`stale or missing in ${relative(process.cwd(), OUT)}: ${stale.join(", ")}`
        + "\nrun: npm --prefix web-src ci && npm --prefix web-src run build");
      process.exit(1);
    }
    console.log(`up to date: ${files.join(", ")}`);
  } finally {
    rmSync(temp, {recursive: true, force: true});
  }
} else {
  const files = await buildAll(OUT);
  for (const f of files) {
    console.log(`${relative(process.cwd(), join(OUT, f))}  ${readFileSync(join(OUT, f)).length} bytes`);
  }
}
