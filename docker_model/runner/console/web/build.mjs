// Builds the console into ../static (or the folder given as the first argument): type-checks and compiles
// src/*.ts with tsc, one ES module per source file (no bundler: the browser loads the modules the app imports),
// then copies index.html and app.css. Same inputs, byte-identical outputs: tsc writes no timestamps or paths,
// and the folder is emptied first so that no file of an earlier build survives.
import { execFileSync } from "node:child_process";
import { copyFileSync, mkdirSync, rmSync } from "node:fs";
import { dirname, resolve } from "node:path";
import { fileURLToPath } from "node:url";

const here = dirname(fileURLToPath(import.meta.url));
const out = resolve(process.argv[2] ?? resolve(here, "../static"));
rmSync(out, { recursive: true, force: true });
mkdirSync(out, { recursive: true });
const tsc = resolve(here, "node_modules/typescript/bin/tsc");
try {
  execFileSync(process.execPath, [tsc, "-p", here, "--outDir", out], { stdio: "inherit" });
} catch {
  console.error("build failed: tsc found the errors above");
  process.exit(1);
}
for (const file of ["index.html", "app.css"]) {
  copyFileSync(resolve(here, file), resolve(out, file));
}
