// Live output: runCodeStream starts code and yields its output as it is printed; the stream
// ends with an `exit` event. streamProcess follows any process (also one started earlier).
// Both can be iterated directly, as here, or awaited for the stream object first.
import { Sandbox } from 'sandlot';

const sandbox = await Sandbox.create({ template: 'code-interpreter' });
try {
  const stream = sandbox.runCodeStream(
    `
import sys, time
for i in range(1, 4):
    print(f"progress {i}/3")
    time.sleep(0.5)
print("a warning", file=sys.stderr)
`,
    // lines: true yields whole lines (raw chunks can split a line, e.g. print's text and its
    // newline can arrive as two writes).
    { language: 'python', name: 'streamed-task', lines: true },
  );
  let exit;
  for await (const event of stream) {
    if (event.type === 'start') console.log(`started ${event.processId}`);
    if (event.type === 'stdout') process.stdout.write(`[stdout] ${event.data}`);
    if (event.type === 'stderr') process.stdout.write(`[stderr] ${event.data}`);
    if (event.type === 'truncated') console.log(`(${event.droppedBytes} bytes of output were dropped)`);
    if (event.type === 'exit') exit = event;
  }
  console.log(`exit: ${exit.status} (code ${exit.exitCode})`);
  if (exit.status !== 'completed') process.exitCode = 1;
} finally {
  await sandbox.kill();
}
