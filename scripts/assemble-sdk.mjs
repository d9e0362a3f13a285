// Merges wasm-bindgen's output with pkg-template/ into one npm package.
// Usage: node scripts/assemble-sdk.mjs <wasm-pack out dir> <package dir>
// The web target gives the glue, shipped twice from one text: as ESM (dist/web) and, once
// minified, as CommonJS for Node (dist/node, loading the same .wasm synchronously). The nodejs
// target gives the declarations, and loads at build time to hand over the record tables
// (src/types/record.rs) the JS mappers are generated from. Every shipped .js/.cjs/.mjs file is
// minified (oxc's minifier, through rolldown, which vite 8 brings): the sources in
// pkg-template/ and wasm-bindgen's output stay readable, the package carries no comments.
import fs from 'node:fs';
import { createRequire } from 'node:module';
import path from 'node:path';
import { minifySync } from 'rolldown/experimental';

const [built, out] = process.argv.slice(2);
if (!built || !out) throw new Error('usage: assemble-sdk.mjs <built> <out>');
const root = path.resolve(path.dirname(new URL(import.meta.url).pathname), '..');
const template = path.join(root, 'pkg-template');
const read = (p) => fs.readFileSync(p, 'utf8');
const write = (p, text) => {
  fs.mkdirSync(path.dirname(p), { recursive: true });
  fs.writeFileSync(p, /\.[cm]?js$/.test(p) ? minify(p, text) : text);
};

const writeMinified = (p, text) => {
  fs.mkdirSync(path.dirname(p), { recursive: true });
  fs.writeFileSync(p, text);
};

// Minifies one shipped JS file. Class names are kept (`Sandbox`, `ProcessHandle` and the
// error classes show in stack traces and console output); top-level names are mangled only
// in modules, where they are private to the file.
function minify(file, code) {
  const module = !file.endsWith('.cjs');
  const result = minifySync(path.basename(file), code, {
    module,
    compress: { target: 'es2022', keepNames: { class: true, function: false } },
    mangle: { toplevel: module, keepNames: { class: true, function: false } },
    codegen: { removeWhitespace: true },
  });
  if (result.errors?.length) throw new Error(`${file}: minifier: ${result.errors.map((e) => e.message).join('; ')}`);
  // Bundlers find the wasm through the literal pattern `new URL('…', import.meta.url)`;
  // the minifier writes the string as a template literal, which not every bundler reads.
  return result.code.replace(/new URL\(`([^`$]+)`,import\.meta\.url\)/g, "new URL('$1',import.meta.url)");
}
const copy = (from, to) => write(to, fs.readFileSync(from, /\.[cm]?js$/.test(to) ? 'utf8' : undefined));

fs.rmSync(out, { recursive: true, force: true });
const web = path.join(out, 'dist/web');
const node = path.join(out, 'dist/node');

// The glue's JSDoc comments are for editors, which read them from the declarations: the
// shipped JS goes without (about 4 KB of the gzipped tarball).
const withoutDocComments = (js) => js.replace(/^[ \t]*\/\*\*[\s\S]*?\*\/[ \t]*\n/gm, '');

function fill(text, marker, replacement) {
  if (!text.includes(marker)) throw new Error(`template line not found: ${marker}`);
  return text.replace(marker, () => replacement);
}

// The JS surface is written as modules (src/surface/) and shipped as one file: concatenated
// in dependency order into one scope, the imports between them dropped, and only what
// index.js exports left exported. The result is plain ESM that toCommonJs can convert.
function surfaceBundle(dir) {
  const order = ['core', 'processes', 'commands', 'files', 'terminals', 'index'];
  const found = fs.readdirSync(dir).filter((f) => f.endsWith('.js')).map((f) => f.slice(0, -3));
  if (found.sort().join() !== [...order].sort().join()) throw new Error(`${dir}: expected the modules ${order.join(', ')}, found ${found.join(', ')}`);
  const imports = /^import \{[^}]*\} from '\.\/\w+\.js';\n/gm;
  const reexports = /^export \{([^}]*)\} from '\.\/\w+\.js';\n/gm;
  const index = read(path.join(dir, 'index.js'));
  const publicNames = new Set([...index.matchAll(reexports)].flatMap((m) => m[1].split(',').map((n) => n.trim())));
  for (const m of index.matchAll(/^export (?:class|function|async function|const) (\w+)/gm)) publicNames.add(m[1]);
  const text = order
    .map((m) => read(path.join(dir, `${m}.js`)).replace(imports, '').replace(reexports, ''))
    .join('\n')
    .replace(/^export (class|function|async function|const) (\w+)/gm, (_, kind, name) => `${publicNames.has(name) ? 'export ' : ''}${kind} ${name}`);
  if (/^(import|export \{)/m.test(text)) throw new Error(`${dir}: an import or export list is left after concatenation`);
  return text;
}

// ESM → CommonJS for the façade's own modules (errors.js, the surface): top-level
// `export class|function|const X` only, no imports.
function toCommonJs(esm, file) {
  if (/^import\b|^export (?!class |function |async function |const )/m.test(esm)) {
    throw new Error(`${file}: only top-level export class/function/const can be converted to CommonJS`);
  }
  const names = [...esm.matchAll(/^export (?:class|function|async function|const) (\w+)/gm)].map((m) => m[1]);
  const body = esm.replace(/^export (class|function|async function|const) /gm, '$1 ');
  return { names, text: `'use strict';\n${body}\nmodule.exports = { ${names.join(', ')} };\n` };
}

// Web target: glue, wasm, façade.
const webGlue = read(path.join(built, 'web/sandlot.js')).replace('/* @ts-self-types="./sandlot.d.ts" */\n', '');
write(path.join(web, 'sandlot.js'), withoutDocComments(webGlue));
copy(path.join(built, 'web/sandlot_bg.wasm'), path.join(web, 'sandlot_bg.wasm'));
copy(path.join(template, 'src/errors.js'), path.join(web, 'errors.js'));

// The record mappers, generated from the Rust tables that define them (src/types/record.rs),
// which the wasm just built hands over (`__recordMappings`). Each is straight-line code: one
// pass over a parsed wire reply, no lookups in a table at run time.
function recordMapper(type, fields) {
  const what = `${/^[AEIOU]/.test(type) ? 'an' : 'a'} ${type} record`;
  const lines = [
    `  ${type}(p, proto) {`,
    `    if (p === null || typeof p !== 'object') throw unreadable('${what}');`,
    '    const r = Object.create(proto);',
    '    let v;',
  ];
  for (const [js, wire, absent] of fields) {
    if (!/^[A-Za-z_]\w*$/.test(js) || !wire.every((w) => /^[A-Za-z_]\w*$/.test(w))) throw new Error(`${type}.${js}: not an identifier`);
    lines.push(`    v = ${wire.map((w) => `p.${w}`).join(' ?? ')};`);
    if (absent === 'required') lines.push(`    if (v == null) throw unreadable('${wire[0]} in ${what}');`, `    r.${js} = v;`);
    else if (absent === 'omitted') lines.push(`    if (v != null) r.${js} = v;`);
    else if (absent === 'omittedUnlessTrue') lines.push(`    if (v === true) r.${js} = true;`);
    else if (/^(''|false|0)$/.test(absent)) lines.push(`    r.${js} = v ?? ${absent};`);
    else throw new Error(`${type}.${js}: unknown absent rule ${absent}`);
  }
  lines.push('    return r;', '  },');
  return lines.join('\n');
}
const mappings = createRequire(import.meta.url)(path.resolve(built, 'node/sandlot.js')).__recordMappings();
const surfaceSource = fill(
  surfaceBundle(path.join(template, 'src/surface')),
  'const records = undefined; // @generated records',
  `const records = {\n${Object.entries(mappings).map(([type, fields]) => recordMapper(type, fields)).join('\n')}\n};`,
);
write(path.join(web, 'surface.js'), surfaceSource);

// Node: the same glue as the web, as CommonJS. It is derived from the web glue once that is
// minified, so the two files are the same bytes but for their first and last few: npm packs
// files by extension, then path, so dist/node/sandlot.js (CommonJS through dist/node's own
// package.json) lands a few KB before dist/web/sandlot.js in the tarball, and gzip stores
// the second copy as references to the first. It loads the wasm synchronously (initSync)
// from the web directory, as wasm-bindgen's nodejs target would.
const webGlueMin = fs.readFileSync(path.join(web, 'sandlot.js'), 'utf8');
const tail = webGlueMin.match(/export\{([^}]*)\};?\s*$/);
const initSync = tail?.[1].split(',').map((e) => e.trim().split(/\s+as\s+/)).find(([, as]) => as === 'initSync')?.[0];
if (!initSync) throw new Error('web glue: no `export { … as initSync }` at its end; update assemble-sdk.mjs');
const glueNames = [...webGlueMin.matchAll(/(?:^|[;}\s])export (?:class|function) (\w+)/g)].map((m) => m[1]);
const wasmUrl = "new URL('sandlot_bg.wasm',import.meta.url)";
if (!webGlueMin.includes(wasmUrl)) throw new Error(`web glue no longer loads ${wasmUrl}; update assemble-sdk.mjs`);
const nodeGlue =
  '"use strict";' +
  webGlueMin
    .slice(0, tail.index)
    .replace(/(^|[;}\s])export (class|function) /g, '$1$2 ')
    .replace(wasmUrl, 'void 0') +
  `;${initSync}({module:require("fs").readFileSync(__dirname+"/../web/sandlot_bg.wasm")});` +
  `module.exports={${glueNames.join(',')}};`;
if (/(^|[;}\s])export[\s{]|import\.meta/.test(nodeGlue)) throw new Error('node glue: ESM syntax left after the conversion');
writeMinified(path.join(node, 'sandlot.js'), nodeGlue);
write(path.join(node, 'package.json'), '{ "type": "commonjs" }\n');
const errorsJs = toCommonJs(read(path.join(template, 'src/errors.js')), 'errors.js');
const surfaceJs = toCommonJs(surfaceSource, 'surface.js');
write(path.join(node, 'errors.cjs'), errorsJs.text);
// The surface likewise: the minified web surface, as CommonJS, so gzip stores it once.
const webSurfaceMin = fs.readFileSync(path.join(web, 'surface.js'), 'utf8');
const nodeSurface =
  '"use strict";' +
  webSurfaceMin.replace(/(^|[;}\s])export (class|function|async function) /g, '$1$2 ') +
  `;module.exports={${surfaceJs.names.join(',')}};`;
if (/(^|[;}\s])export[\s{]|import\.meta|^import\b/m.test(nodeSurface)) throw new Error('node surface: ESM syntax left after the conversion');
writeMinified(path.join(node, 'surface.js'), nodeSurface);
const classNames = errorsJs.names;

// Declarations: one file for every entry (the API generated from the Rust crate, the error
// classes, the JS surface, and the entry's own functions), each entry's .d.ts re-exporting
// it. CommonJS-format (.d.cts), which both ESM and CommonJS types can import.
const api = read(path.join(built, 'node/sandlot.d.ts'));
if (/initSync|__wbg_init/.test(api)) throw new Error('node .d.ts unexpectedly declares init helpers');
const fragment = (file) =>
  read(path.join(template, 'src', file))
    .replace(/^(\/\/.*\n)+/, '') // the fragment's own header
    .replace(/^import [\s\S]*? from '[^']+';\n/gm, '')
    .replace(/^export \* from '[^']+';\n/gm, '');
const types =
  `// Declarations of the \`sandlot\` package: its API (generated from the Rust crate by\n` +
  `// wasm-bindgen), its error classes and its JS surface. Every entry's .d.ts re-exports this.\n` +
  [api, fragment('errors.d.ts'), fragment('surface.d.ts'), fragment('index.d.ts')].join('\n');
write(path.join(out, 'dist/sandlot.d.cts'), types);
const entryTypes = "// Types of this entry: the package's declarations.\nexport * from '../sandlot.cjs';\n";
for (const file of [path.join(web, 'index.d.ts'), path.join(node, 'index.d.cts'), path.join(node, 'index.d.mts')]) {
  write(file, entryTypes);
}

// The entries' export lists, derived instead of kept by hand: a module's public names are
// the ones it exports at run time that the declarations also name (the wasm's internal
// `registerErrorClasses` has no declaration, the surface's `extend` none either).
const declared = new Set(
  [...types.matchAll(/^export (?:declare )?(?:class|function|const) (\w+)/gm)].map((m) => m[1]),
);
const isPublic = (name) => declared.has(name);
const webTemplate = read(path.join(template, 'src/web.js'));
const ownWeb = [...webTemplate.matchAll(/^export (?:async )?function (\w+)/gm)].map((m) => m[1]);
const nodeTemplate = read(path.join(template, 'src/node.cjs'));
const ownNode = [...nodeTemplate.matchAll(/^exports\.(\w+) = /gm)].map((m) => m[1]);
const publicGlue = glueNames.filter(isPublic);
const publicSurface = surfaceJs.names.filter(isPublic);


let webEntry = fill(
  webTemplate,
  "export {} from './sandlot.js';",
  `export { ${publicGlue.filter((n) => !ownWeb.includes(n)).join(', ')} } from './sandlot.js';`,
);
webEntry = fill(webEntry, "export {} from './surface.js';", `export { ${publicSurface.join(', ')} } from './surface.js';`);
write(path.join(web, 'index.js'), webEntry);

const nodeExports = [
  ...publicGlue.map((n) => `exports.${n} = glue.${n};`),
  ...errorsJs.names.map((n) => `exports.${n} = errors.${n};`),
  ...publicSurface.map((n) => `exports.${n} = surface.${n};`),
];
write(path.join(node, 'index.cjs'), fill(nodeTemplate, '// @exports: glue, errors, surface', nodeExports.join('\n')));
const nodeNames = [...publicGlue, ...errorsJs.names, ...publicSurface, ...ownNode];
write(
  path.join(node, 'index.mjs'),
  fill(read(path.join(template, 'src/node.mjs')), 'export const {} = cjs;', `export const { ${nodeNames.join(', ')} } = cjs;`),
);

// Every entry exports the same names, and exactly the ones the declarations name.
const webNames = [...new Set([...publicGlue, ...ownWeb, ...errorsJs.names, ...publicSurface])];
for (const [entry, names] of [['web', webNames], ['node', nodeNames]]) {
  const missing = [...declared].filter((n) => !names.includes(n));
  const untyped = names.filter((n) => !declared.has(n));
  if (missing.length || untyped.length) {
    throw new Error(`${entry} entry: declared but not exported: [${missing}]; exported but not declared: [${untyped}]`);
  }
}

// package.json with the crate's version, and the README.
const cargo = read(path.join(root, 'Cargo.toml'));
const version = cargo.match(/\[workspace\.package\][^[]*?version\s*=\s*"([^"]+)"/)?.[1];
if (!version) throw new Error('no [workspace.package] version in Cargo.toml');
const pkg = JSON.parse(read(path.join(template, 'package.json')));
pkg.version = version;
write(path.join(out, 'package.json'), JSON.stringify(pkg, null, 2) + '\n');
copy(path.join(template, 'README.md'), path.join(out, 'README.md'));

// The command line (the package's `bin`): its entry, executable, and its modules (package.json's
// `files` lists bin/: npm packs the entry of a `bin` whatever `files` says, but not its neighbours).
copy(path.join(template, 'bin/sandlot.mjs'), path.join(out, 'bin/sandlot.mjs'));
fs.chmodSync(path.join(out, 'bin/sandlot.mjs'), 0o755);
for (const name of fs.readdirSync(path.join(template, 'bin/cli'))) {
  copy(path.join(template, 'bin/cli', name), path.join(out, 'bin/cli', name));
}
console.log(`assembled sandlot@${version} in ${out} (error classes: ${classNames.length})`);
