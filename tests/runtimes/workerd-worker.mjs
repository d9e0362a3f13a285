// The Worker that workerd.mjs serves: the package's web entry and its wasm as modules of the
// Worker (names given in the generated config), the wasm handed to `initialize` as the
// `WebAssembly.Module` that workerd gives for a wasm module (Workers cannot fetch or compile
// wasm at run time). POST { baseURL, apiKey } runs the scenario and answers its report; GET
// answers once the Worker is up.
import * as sdk from './sandlot/index.js';
import wasm from './sandlot/sandlot_bg.wasm';

import { smoke } from './scenario.mjs';

export default {
  async fetch(request) {
    if (request.method !== 'POST') return new Response('ready');
    await sdk.initialize(wasm);
    const { baseURL, apiKey } = await request.json();
    return Response.json(await smoke(sdk, { baseURL, apiKey, entry: 'dist/web/index.js + sandlot_bg.wasm as Worker modules' }));
  },
};
