// Check on a background process by polling: getProcess for one, listProcesses for all.
import { Sandbox } from 'sandlot';

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

const sandbox = await Sandbox.create({ template: 'code-interpreter' });
try {
  const { processId } = await sandbox.runCodeBackground(
    'import time\nfor i in range(3):\n    print(f"tick {i}")\n    time.sleep(1)',
    { language: 'python' },
  );

  let proc = await sandbox.getProcess(processId);
  while (proc.status === 'queued' || proc.status === 'running') {
    console.log(`${processId}: ${proc.status} (${proc.stdout.split('\n').filter(Boolean).length} lines so far)`);
    await sleep(500);
    proc = await sandbox.getProcess(processId);
  }
  console.log(`${processId}: ${proc.status}, exit code ${proc.exitCode}`);
  console.log(proc.stdout.trimEnd());

  const all = await sandbox.listProcesses();
  console.log(`The sandbox has ${all.length} process record(s).`);
  if (proc.status !== 'completed') process.exitCode = 1;
} finally {
  await sandbox.kill();
}
