// The complete background-execution flow without a polling loop: start a long task, let its
// handle wait for it to end (completed, failed, killed or timeout), then print its output (or
// its errors).
import { Sandbox } from 'sandlot';

const sandbox = await Sandbox.create({ template: 'code-interpreter' });
try {
  const code = `
import time
for step in range(1, 6):
    print(f"step {step}/5")
    time.sleep(0.5)
print("all steps done")
`;
  const result = await sandbox.runCodeBackground(code, {
    language: 'python',
    name: 'long-task',
    env: { SEED: '42' },
    timeout: 300,
  });
  console.log(`Started process ${result.processId} (status: ${result.status}, timeout: ${result.timeout}s)`);

  // Resolves with the final record once the process has ended (`sandbox.waitForProcess(id)`
  // does the same by id). `timeout` (seconds) gives up with a TimeoutError (the process itself
  // runs on); `signal` cancels the wait.
  const proc = await result.wait({ timeout: 60 });
  console.log(`Status: ${proc.status} (exit code ${proc.exitCode}, ${proc.executionTime}s)`);

  if (proc.status === 'completed') {
    console.log('Output:');
    console.log(proc.stdout.trimEnd());
  } else {
    console.log('Errors:');
    console.log((proc.stderr || proc.error || '').trimEnd());
    process.exitCode = 1;
  }
} finally {
  await sandbox.kill();
}
