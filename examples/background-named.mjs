// Several named processes at once in one sandbox; listProcesses shows each by name.
import { Sandbox } from 'sandlot';

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

const sandbox = await Sandbox.create({ template: 'code-interpreter' });
try {
  const jobs = [
    { name: 'data-download', code: 'import time\ntime.sleep(1)\nprint("downloaded 3 files")' },
    { name: 'model-training', code: 'import time\ntime.sleep(2)\nprint("trained: loss=0.042")' },
    { name: 'report', code: 'echo "report written"', language: 'bash' },
  ];
  for (const job of jobs) {
    const started = await sandbox.runCodeBackground(job.code, {
      language: job.language ?? 'python',
      name: job.name,
    });
    console.log(`Started ${started.name}: ${started.processId}`);
  }

  let processes = await sandbox.listProcesses();
  while (processes.some((p) => p.status === 'queued' || p.status === 'running')) {
    console.log(processes.map((p) => `${p.name ?? '(unnamed)'}=${p.status}`).join('  '));
    await sleep(500);
    processes = await sandbox.listProcesses();
  }
  for (const p of processes) {
    console.log(`${p.name}: ${p.status} -> ${p.stdout.trim()}`);
  }
  if (processes.some((p) => p.status !== 'completed')) process.exitCode = 1;
} finally {
  await sandbox.kill();
}
