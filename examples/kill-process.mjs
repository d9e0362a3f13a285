// Kill a background process that would otherwise run for a long time, then remove its record.
import { Sandbox, ProcessNotFoundError } from 'sandlot';

const sandbox = await Sandbox.create({ template: 'code-interpreter' });
try {
  const { processId } = await sandbox.runCodeBackground(
    'import time\nwhile True:\n    print("still running", flush=True)\n    time.sleep(0.5)',
    { language: 'python', name: 'endless' },
  );
  await new Promise((resolve) => setTimeout(resolve, 1500));

  const killed = await sandbox.killProcess(processId);
  console.log(`killProcess: ${killed.message} (status ${killed.status})`);
  const after = await sandbox.getProcess(processId);
  console.log(`Status now: ${after.status}; it printed ${after.stdout.split('\n').filter(Boolean).length} lines`);

  await sandbox.removeProcess(processId);
  try {
    await sandbox.getProcess(processId);
    process.exitCode = 1;
  } catch (error) {
    if (!(error instanceof ProcessNotFoundError)) throw error;
    console.log(`After removeProcess: ${error.name} (${error.code})`);
  }
  if (after.status !== 'killed') process.exitCode = 1;
} finally {
  await sandbox.kill();
}
