// Tries the official @hopx-ai/sdk's calls beyond those benchmarked against a throwaway
// sandlotd and prints each one's outcome (compatibility survey, not a benchmark).
//   node bench/profile/official-calls.mjs
import { loadOfficial } from '../lib/clients.mjs';
import { startServer } from '../lib/server.mjs';
import { errorText } from '../lib/stats.mjs';

const server = await startServer({});
try {
  const { Sandbox } = await loadOfficial();
  const opts = { template: 'code-interpreter', apiKey: server.apiKey, baseURL: server.url };
  const step = async (name, fn) => {
    try {
      const r = await fn();
      console.log(`ok    ${name}${r === undefined ? '' : `: ${JSON.stringify(r).slice(0, 140)}`}`);
      return r;
    } catch (e) {
      console.log(`FAIL  ${name}: ${errorText(e)}`);
      return undefined;
    }
  };
  const sb = await step('Sandbox.create({ envVars })', () => Sandbox.create({ ...opts, envVars: { A: '1' } }));
  await step('getInfo', () => sb.getInfo());
  await step('isHealthy', () => sb.isHealthy());
  await step('runCode bash', () => sb.runCode('echo $A', { language: 'bash' }));
  await step('runCode javascript', () => sb.runCode('console.log(2)', { language: 'javascript' }));
  await step('runCode failing', () => sb.runCode('exit 3', { language: 'bash' }));
  const bg = await step('runCodeBackground with name/env', () => sb.runCodeBackground('sleep 5', { language: 'bash', name: 'n1', env: { B: '2' } }));
  await step('listProcesses', async () => (await sb.listProcesses()).length);
  await step('killProcess', () => sb.killProcess(bg.process_id));
  await step('runCodeStream (WebSocket)', async () => {
    const out = [];
    for await (const m of sb.runCodeStream('print(1)\nprint(2)')) out.push(m.type);
    return out;
  });
  await step('env.getAll', () => sb.env.getAll());
  await step('env.update', () => sb.env.update({ C: '3' }));
  await step('commands.run', () => sb.commands.run('echo hi'));
  await step('files.write', () => sb.files.write('/workspace/a.txt', 'x'));
  await step('files.read', () => sb.files.read('/workspace/a.txt'));
  await step('listSystemProcesses', () => sb.listSystemProcesses());
  await step('getMetricsSnapshot', () => sb.getMetricsSnapshot());
  await step('setTimeout', () => sb.setTimeout(600));
  await step('pause', () => sb.pause());
  await step('resume', () => sb.resume());
  await step('refreshToken', () => sb.refreshToken());
  await step('Sandbox.list', async () => (await Sandbox.list({ apiKey: server.apiKey, baseURL: server.url })).length);
  await step('Sandbox.connect', async () => (await Sandbox.connect(sb.sandboxId, server.apiKey, server.url)).sandboxId);
  await step('kill', () => sb.kill());
} finally {
  await server.stop();
}
