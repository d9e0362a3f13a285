// Live output of a background process through callbacks: runCodeBackground still resolves at
// once with the processId; onStdout/onStderr then get each piece of output in order, and
// onExit is called once when the process has ended.
import { Sandbox } from 'sandlot';

const sandbox = await Sandbox.create({ template: 'code-interpreter' });
try {
  let ended;
  const exited = new Promise((resolve) => (ended = resolve));
  const run = await sandbox.runCodeBackground(
    `
import sys, time
for i in range(1, 4):
    print(f"tick {i}")
    time.sleep(0.3)
print("careful", file=sys.stderr)
`,
    {
      name: 'ticker',
      lines: true, // whole lines; without it, chunks as the process wrote them
      onStdout: (line) => process.stdout.write(`[stdout] ${line}`),
      onStderr: (line) => process.stdout.write(`[stderr] ${line}`),
      onExit: ended,
    },
  );
  console.log(`started ${run.processId} (${run.status})`);
  const exit = await exited;
  console.log(`exit: ${exit.status} (code ${exit.exitCode})`);
} finally {
  await sandbox.kill();
}
