// Merges wasm-bindgen's two outputs (web + nodejs targets) with pkg-template/ into one npm
// package. Usage: node scripts/assemble-sdk.mjs <wasm-pack out dir> <package dir>
// The web and nodejs glue load the same .wasm (byte-identical across targets), so only one
// copy ships: the node glue is pointed at the web directory's file.
import fs from 'node:fs';
import path from 'node:path';

const [built, out] = process.argv.slice(2);
if (!built || !out) throw new Error('usage: assemble-sdk.mjs <built> <out>');
const root = path.resolve(path.dirname(new URL(import.meta.url).pathname), '..');
const template = path.join(root, 'pkg-template');
const read = (p) => fs.readFileSync(p, 'utf8');
const write = (p, text) => {
  fs.mkdirSync(path.dirname(p), { recursive: true });
  fs.writeFileSync(p, text);
};
const copy = (from, to) => {
  fs.mkdirSync(path.dirname(to), { recursive: true });
  fs.copyFileSync(from, to);
};

fs.rmSync(out, { recursive: true, force: true });
const web = path.join(out, 'dist/web');
const node = path.join(out, 'dist/node');

// Web target: glue, wasm, façade.
copy(path.join(built, 'web/sandlot.js'), path.join(web, 'sandlot.js'));
copy(path.join(built, 'web/sandlot.d.ts'), path.join(web, 'sandlot.d.ts'));
copy(path.join(built, 'web/sandlot_bg.wasm'), path.join(web, 'sandlot_bg.wasm'));
copy(path.join(template, 'src/web.js'), path.join(web, 'index.js'));
copy(path.join(template, 'src/errors.js'), path.join(web, 'errors.js'));
copy(path.join(template, 'src/errors.d.ts'), path.join(web, 'errors.d.ts'));

// The API declarations without the web target's init helpers: the nodejs glue's .d.ts.
const api = read(path.join(built, 'node/sandlot.d.ts'));
if (/initSync|__wbg_init/.test(api)) throw new Error('node .d.ts unexpectedly declares init helpers');
write(path.join(web, 'api.d.ts'), api);
write(path.join(node, 'api.d.cts'), api);
write(path.join(node, 'api.d.mts'), api);

const indexTypes = read(path.join(template, 'src/index.d.ts'));
write(path.join(web, 'index.d.ts'), indexTypes);
write(path.join(node, 'index.d.cts'), indexTypes.replaceAll("'./api.js'", "'./api.cjs'").replaceAll("'./errors.js'", "'./errors.cjs'"));
write(path.join(node, 'index.d.mts'), indexTypes.replaceAll("'./api.js'", "'./api.mjs'").replaceAll("'./errors.js'", "'./errors.mjs'"));
const errorTypes = read(path.join(template, 'src/errors.d.ts'));
write(path.join(node, 'errors.d.cts'), errorTypes);
write(path.join(node, 'errors.d.mts'), errorTypes);

// Node target: CommonJS glue reading the web directory's wasm.
const wasmRef = '`${__dirname}/sandlot_bg.wasm`';
let glue = read(path.join(built, 'node/sandlot.js'));
if (!glue.includes(wasmRef)) throw new Error(`nodejs glue no longer loads ${wasmRef}; update assemble-sdk.mjs`);
glue = glue.replace(wasmRef, '`${__dirname}/../web/sandlot_bg.wasm`').replace('/* @ts-self-types="./sandlot.d.ts" */', '');
write(path.join(node, 'sandlot.cjs'), glue);
copy(path.join(template, 'src/node.cjs'), path.join(node, 'index.cjs'));
copy(path.join(template, 'src/node.mjs'), path.join(node, 'index.mjs'));

// errors.cjs: the same classes as errors.js, as CommonJS.
const errorsEsm = read(path.join(template, 'src/errors.js'));
const classNames = [...errorsEsm.matchAll(/^export class (\w+)/gm)].map((m) => m[1]);
const errorsCjs =
  "'use strict';\n" +
  errorsEsm.replace(/^export class /gm, 'class ') +
  `\nmodule.exports = { ${classNames.join(', ')} };\n`;
write(path.join(node, 'errors.cjs'), errorsCjs);

// package.json with the crate's version, and the README.
const cargo = read(path.join(root, 'Cargo.toml'));
const version = cargo.match(/\[workspace\.package\][^[]*?version\s*=\s*"([^"]+)"/)?.[1];
if (!version) throw new Error('no [workspace.package] version in Cargo.toml');
const pkg = JSON.parse(read(path.join(template, 'package.json')));
pkg.version = version;
write(path.join(out, 'package.json'), JSON.stringify(pkg, null, 2) + '\n');
copy(path.join(template, 'README.md'), path.join(out, 'README.md'));
console.log(`assembled sandlot@${version} in ${out} (error classes: ${classNames.length})`);
