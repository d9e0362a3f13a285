// The complete background-execution flow: start a long task, print its status on every poll
// until it completes or fails, then print its output (or its errors).
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

  let proc;
  for (;;) {
    const processes = await sandbox.listProcesses();
    proc = processes.find((p) => p.processId === result.processId);
    console.log(`Status: ${proc.status}`);
    if (proc.status === 'completed' || proc.status === 'failed') break;
    if (proc.status === 'killed' || proc.status === 'timeout') break; // ended another way
    await new Promise((resolve) => setTimeout(resolve, 1000));
  }

  if (proc.status === 'completed') {
    console.log('Output:');
    console.log(proc.stdout.trimEnd());
  } else {
    console.log('Errors:');
    console.log(proc.stderr.trimEnd());
    process.exitCode = 1;
  }
} finally {
  await sandbox.kill();
}
