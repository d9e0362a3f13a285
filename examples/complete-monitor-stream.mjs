// The complete background-execution flow, live: start a long task, print each line of its
// output the moment it is written (streamProcess follows the process until it ends, resuming
// by itself after a dropped connection), then its final status.
import { Sandbox } from 'sandlot';

const sandbox = await Sandbox.create({ template: 'code-interpreter' });
try {
  const code = `
import sys, time
for step in range(1, 6):
    print(f"step {step}/5")
    if step == 3:
        print("halfway: a warning", file=sys.stderr)
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

  // From the start of the output (nothing printed before this call is missed) to the end.
  // `lines: true` hands out whole lines; without it events are chunks as written.
  const stream = await sandbox.streamProcess(result.processId, { lines: true });
  let exit;
  for await (const event of stream) {
    const at = new Date().toISOString().slice(11, 23);
    if (event.type === 'stdout') process.stdout.write(`${at} [stdout] ${event.data}`);
    if (event.type === 'stderr') process.stdout.write(`${at} [stderr] ${event.data}`);
    if (event.type === 'truncated') console.log(`(${event.droppedBytes} bytes of output were dropped)`);
    if (event.type === 'exit') exit = event;
  }
  console.log(`Status: ${exit.status} (exit code ${exit.exitCode})`);
  if (exit.status !== 'completed') process.exitCode = 1;
} finally {
  await sandbox.kill();
}
