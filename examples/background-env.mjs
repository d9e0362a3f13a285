// Environment variables for one background run (on top of the sandbox's own envVars).
import { Sandbox } from 'sandlot';

const sandbox = await Sandbox.create({
  template: 'code-interpreter',
  envVars: { APP_MODE: 'example' },
});
try {
  const result = await sandbox.runCodeBackground(
    `
import os
print("SEED =", os.environ["SEED"])
print("API_URL =", os.environ["API_URL"])
print("APP_MODE =", os.environ.get("APP_MODE"))
`,
    { language: 'python', name: 'env-demo', env: { SEED: '42', API_URL: 'https://example.test' } },
  );
  const done = await sandbox.waitForProcess(result.processId);
  console.log(done.stdout.trimEnd());
  if (done.status !== 'completed' || !done.stdout.includes('SEED = 42')) process.exitCode = 1;
} finally {
  await sandbox.kill();
}
