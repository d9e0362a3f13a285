// Runtime: Node.js, CommonJS. Run with Node from the project the tarball is installed in;
// require()s the package (the `node` + `require` condition: dist/node/index.cjs, which loads
// the wasm synchronously). The scenario module is ESM, so it comes in through import().
const sdk = require('sandlot');

import('./scenario.mjs').then(async ({ line, smoke }) => {
  const report = await smoke(sdk, { baseURL: process.env.SANDLOT_URL, apiKey: process.env.SANDLOT_API_KEY, entry: require.resolve('sandlot') });
  console.log(line(report));
  process.exitCode = report.ok ? 0 : 1;
});
