import { Sandbox, AbortError } from 'sandlot';
const sandbox = await Sandbox.connect(JSON.parse(process.env.SESSION));
const bg = await sandbox.runCodeBackground('sleep 20', { language: 'bash' });
const controller = new AbortController();
const stream = await sandbox.streamProcess(bg.processId, { signal: controller.signal });
setTimeout(() => { global.gc(); controller.abort('after gc'); }, 300);
const started = Date.now();
try {
  for await (const event of stream) {}
  console.log('not aborted');
} catch (e) {
  console.log(e instanceof AbortError ? 'aborted ' + (Date.now() - started) : 'other ' + e.name);
}
await sandbox.killProcess(bg.processId);
