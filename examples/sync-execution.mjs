// Synchronous execution: runCode waits for the code to finish and returns its output.
// Code that fails is still a result (non-zero exitCode), not an exception.
import { Sandbox } from 'sandlot';

const sandbox = await Sandbox.create({ template: 'code-interpreter' });
try {
  const ok = await sandbox.runCode('print(sum(range(101)))', { language: 'python' });
  console.log(`python: ${ok.stdout.trim()} (exit ${ok.exitCode}, ${ok.executionTime.toFixed(3)}s)`);

  const js = await sandbox.runCode('console.log([1, 2, 3].map((x) => x * 2).join(","))', {
    language: 'javascript',
  });
  console.log(`javascript: ${js.stdout.trim()}`);

  const sh = await sandbox.runCode('echo "$GREETING from $(pwd)"', {
    language: 'bash',
    env: { GREETING: 'hello' },
  });
  console.log(`bash: ${sh.stdout.trim()}`);

  const failed = await sandbox.runCode('raise SystemExit("bad input")', { language: 'python' });
  console.log(`failing code: success=${failed.success} exit=${failed.exitCode} stderr=${failed.stderr.trim()}`);

  if (ok.stdout.trim() !== '5050' || js.stdout.trim() !== '2,4,6' || failed.success) process.exitCode = 1;
} finally {
  await sandbox.kill();
}
