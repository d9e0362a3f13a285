// Start code in the background: runCodeBackground resolves at once with the process id,
// while the code keeps running in the sandbox.
import { Sandbox } from 'sandlot';

const sandbox = await Sandbox.create({ template: 'code-interpreter' });
try {
  const result = await sandbox.runCodeBackground(
    `
import time
print("working...")
time.sleep(2)
print("finished")
`,
    { language: 'python', timeout: 300 },
  );
  console.log(`Process ID: ${result.processId}`);
  console.log(`Execution ID: ${result.executionId}`);
  console.log(`Status: ${result.status}`);
  console.log(`Timeout: ${result.timeout}s`);

  // The call above returned before the code ran; wait for it here only to show the output.
  const done = await sandbox.waitForProcess(result.processId);
  console.log(`Final status: ${done.status}`);
  console.log(done.stdout.trimEnd());
  if (done.status !== 'completed') process.exitCode = 1;
} finally {
  await sandbox.kill();
}
