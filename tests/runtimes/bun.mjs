// Runtime: Bun. Run with `bun run bun.mjs` from the project the tarball is installed in.
// The scenario runs twice: on the web entry imported by path (the wasm fetched from a file:
// URL), and on the package imported by name, for which Bun picks the `node` condition
// (dist/node/index.mjs, loading the wasm with node:fs).
import * as viaName from 'sandlot';
import * as web from './node_modules/sandlot/dist/web/index.js';

import { line, smoke } from './scenario.mjs';

const options = { baseURL: process.env.SANDLOT_URL, apiKey: process.env.SANDLOT_API_KEY };
let ok = true;
for (const [sdk, entry] of [
  [web, new URL('./node_modules/sandlot/dist/web/index.js', import.meta.url).href],
  [viaName, import.meta.resolve('sandlot')],
]) {
  const report = await smoke(sdk, { ...options, entry });
  console.log(line(report));
  ok &&= report.ok;
}
process.exit(ok ? 0 : 1);
