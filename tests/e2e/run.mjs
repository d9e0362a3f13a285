// Driver of the SDK's JS end-to-end suites: packs pkg/ with `npm pack`, installs the tarball
// into a fresh ESM project and a fresh CommonJS project under tests/e2e/.tmp, copies the
// tests and examples in, and runs them with node:test (one process per file, files in
// sequence). Needs a built pkg/ (scripts/build-sdk.sh) and a sandlotd binary.
import { execFileSync, spawnSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';

const here = path.dirname(new URL(import.meta.url).pathname);
const repo = path.resolve(here, '../..');
const tmp = path.join(here, '.tmp');
const sh = (cmd, args, cwd) => execFileSync(cmd, args, { cwd, stdio: ['ignore', 'pipe', 'inherit'], encoding: 'utf8' });

if (!fs.existsSync(path.join(repo, 'pkg/package.json'))) throw new Error('pkg/ is missing: run scripts/build-sdk.sh');
fs.rmSync(tmp, { recursive: true, force: true });
fs.mkdirSync(tmp, { recursive: true });

const tarball = path.join(tmp, sh('npm', ['pack', '--silent', '--pack-destination', tmp], path.join(repo, 'pkg')).trim().split('\n').pop());
console.log(`packed ${path.relative(repo, tarball)}`);

for (const [dir, type] of [['esm', 'module'], ['cjs', 'commonjs']]) {
  const project = path.join(tmp, dir);
  fs.mkdirSync(project);
  fs.writeFileSync(path.join(project, 'package.json'), JSON.stringify({ name: `sandlot-e2e-${dir}`, private: true, type }, null, 2));
  sh('npm', ['install', '--silent', '--no-audit', '--no-fund', '--no-package-lock', tarball], project);
  fs.copyFileSync(path.join(here, 'harness.mjs'), path.join(project, 'harness.mjs'));
}
const esm = path.join(tmp, 'esm');
for (const f of ['sdk-common.mjs', 'sdk.test.mjs', 'sdk-resilience.test.mjs', 'sdk-streams.test.mjs', 'sdk-processes.test.mjs', 'commands.test.mjs', 'files.test.mjs', 'terminal.test.mjs', 'hopx-js-compat.test.mjs', 'network.test.mjs', 'contexts.test.mjs', 'examples.test.mjs', 'web.test.mjs', 'browser.test.mjs', 'browser-playground.test.mjs', 'cluster.test.mjs', 'types-check.ts']) fs.copyFileSync(path.join(here, f), path.join(esm, f));
fs.copyFileSync(path.join(here, 'cjs.test.cjs'), path.join(tmp, 'cjs', 'cjs.test.cjs'));
fs.cpSync(path.join(repo, 'examples'), path.join(esm, 'examples'), {
  recursive: true,
  filter: (src) => !/node_modules|\/dist$/.test(src),
});

const files = process.argv.slice(2).length
  ? process.argv.slice(2)
  : ['esm/sdk.test.mjs', 'esm/sdk-resilience.test.mjs', 'esm/sdk-streams.test.mjs', 'esm/sdk-processes.test.mjs', 'esm/commands.test.mjs', 'esm/files.test.mjs', 'esm/terminal.test.mjs', 'esm/hopx-js-compat.test.mjs', 'esm/network.test.mjs', 'esm/contexts.test.mjs', 'esm/web.test.mjs', 'esm/browser.test.mjs', 'esm/browser-playground.test.mjs', 'cjs/cjs.test.cjs', 'esm/examples.test.mjs'];
const result = spawnSync(process.execPath, ['--test', '--test-concurrency=1', ...files], {
  cwd: tmp,
  stdio: 'inherit',
  env: { ...process.env, SANDLOT_REPO: repo },
});
process.exit(result.status ?? 1);
