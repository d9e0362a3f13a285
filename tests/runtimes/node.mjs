// Runtime: Node.js, ESM. Run with Node from the project the tarball is installed in; imports
// the package by name (Node picks the `node` + `import` condition: dist/node/index.mjs).
import * as sdk from 'sandlot';

import { line, smoke } from './scenario.mjs';

const report = await smoke(sdk, { baseURL: process.env.SANDLOT_URL, apiKey: process.env.SANDLOT_API_KEY, entry: import.meta.resolve('sandlot') });
console.log(line(report));
process.exitCode = report.ok ? 0 : 1;
