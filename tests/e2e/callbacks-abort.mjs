import { Sandbox } from 'sandlot';
const sandbox = await Sandbox.connect(JSON.parse(process.env.SESSION));
const controller = new AbortController();
const run = await sandbox.runCodeBackground('import time\nfor i in range(600):\n    print(i, flush=True)\n    time.sleep(0.1)', {
  signal: controller.signal,
  onStdout: (d) => { process.stdout.write('got ' + d.trim() + '\n'); controller.abort(); },
});
process.on('exit', () => console.log('exiting ' + run.processId));
