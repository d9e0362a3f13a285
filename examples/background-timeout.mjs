// A run-time limit: the process is killed when it runs past `timeout` seconds and ends with
// status 'timeout' (keeping whatever it printed before).
import { Sandbox } from 'sandlot';

const sandbox = await Sandbox.create({ template: 'code-interpreter' });
try {
  const result = await sandbox.runCodeBackground(
    'import time\nprint("starting a long job", flush=True)\ntime.sleep(60)\nprint("never printed")',
    { language: 'python', name: 'too-slow', timeout: 2 },
  );
  console.log(`Started ${result.name} with a ${result.timeout}s timeout`);
  const done = await sandbox.waitForProcess(result.processId, { interval: 0.25 });
  console.log(`Status: ${done.status}`);
  console.log(`Output before the timeout: ${done.stdout.trim()}`);
  if (done.status !== 'timeout') process.exitCode = 1;
} finally {
  await sandbox.kill();
}
