// Loads editor-form workflows into ComfyUI's real editor (headless Chromium) and prints, as one
// JSON object, what the editor makes of each: the node types it does not know, the page's
// errors, and its own API form (app.graphToPrompt(), what "Export (API)" saves).
//
//   node tests/editor_export.cjs URL CHROMIUM WORKFLOW.json...
//
// playwright-core is found through PLAYWRIGHT_CORE (its folder) or the usual require() search.
"use strict";
const fs = require("fs");
const path = require("path");
const { chromium } = require(process.env.PLAYWRIGHT_CORE || "playwright-core");

async function main() {
  const [url, browserPath, ...files] = process.argv.slice(2);
  const browser = await chromium.launch({ executablePath: browserPath, headless: true });
  const results = {};
  try {
    const page = await browser.newPage({ viewport: { width: 1600, height: 1000 } });
    const pageErrors = [];
    page.on("pageerror", (err) => pageErrors.push(String(err.message || err).split("\n")[0]));
    await page.goto(url, { waitUntil: "load", timeout: 120000 });
    // The editor is ready once its app has a graph and the backend's node types are registered.
    await page.waitForFunction(
      () => window.app && window.app.graph && window.LiteGraph && window.LiteGraph.registered_node_types.KSampler,
      null,
      { timeout: 120000 },
    );
    for (const file of files) {
      const workflow = JSON.parse(fs.readFileSync(file, "utf8"));
      const before = pageErrors.length;
      const result = await page.evaluate(async (wf) => {
        const known = window.LiteGraph.registered_node_types;
        const missing = [...new Set(wf.nodes.map((n) => n.type).filter((t) => !known[t]))];
        await window.app.loadGraphData(wf, true, true, null);
        const prompt = await window.app.graphToPrompt();
        return { missing, output: prompt.output };
      }, workflow);
      result.errors = pageErrors.slice(before);
      results[path.basename(file, ".json")] = result;
    }
  } finally {
    await browser.close();
  }
  process.stdout.write(JSON.stringify(results));
}

main().catch((err) => {
  process.stderr.write(`editor_export: ${err && err.stack ? err.stack : err}\n`);
  process.exit(1);
});
