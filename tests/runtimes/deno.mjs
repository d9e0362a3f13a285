// Runtime: Deno. Run from the project the tarball is installed in (its package.json and
// node_modules/, which Deno uses as they are), with
//   deno run --no-prompt --no-lock --allow-net=127.0.0.1 --allow-read --allow-env=SANDLOT_URL,SANDLOT_API_KEY deno.mjs
// The scenario runs twice: on the web entry imported by path (what a Deno program importing
// dist/web/index.js, or a URL of it, gets: the wasm fetched from a file: URL), and on the
// package imported by name, for which Deno picks the `node` condition (dist/node/index.mjs,
// through its Node compatibility).
import * as viaName from 'sandlot';
import * as web from './node_modules/sandlot/dist/web/index.js';

import { line, smoke } from './scenario.mjs';

const options = { baseURL: Deno.env.get('SANDLOT_URL'), apiKey: Deno.env.get('SANDLOT_API_KEY') };
let ok = true;
for (const [sdk, entry] of [
  [web, new URL('./node_modules/sandlot/dist/web/index.js', import.meta.url).href],
  [viaName, import.meta.resolve('sandlot')],
]) {
  const report = await smoke(sdk, { ...options, entry });
  console.log(line(report));
  ok &&= report.ok;
}
Deno.exit(ok ? 0 : 1);
