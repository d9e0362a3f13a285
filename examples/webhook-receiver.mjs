// Async execution with a signed webhook: start an HTTP receiver on 127.0.0.1, have the server
// run code with runCodeAsync and POST the result to the receiver when it ends, check the
// signature with verifyWebhookSignature, print the result, stop. A sandlotd with an API key
// calls only the callback hosts its operator allows: start it with
// `--webhook-allow-hosts 127.0.0.1` (local mode, without a key, allows loopback receivers).
// WEBHOOK_HOST sets another address to listen on (one the server can reach: in a cluster,
// the node agents call it).
import { randomBytes } from 'node:crypto';
import http from 'node:http';
import { Sandbox, verifyWebhookSignature } from 'sandlot';

const secret = `whsec_${randomBytes(16).toString('hex')}`;

// The receiver: verify the raw body before parsing it; answer 2xx only to a genuine call (the
// server retries a delivery that gets an error).
let delivered;
const delivery = new Promise((resolve) => (delivered = resolve));
const receiver = http.createServer((req, res) => {
  let body = '';
  req.setEncoding('utf8');
  req.on('data', (chunk) => (body += chunk));
  req.on('end', () => {
    const genuine = verifyWebhookSignature({
      secret,
      body,
      timestamp: req.headers['x-hopx-timestamp'] ?? '',
      signature: req.headers['x-hopx-signature'] ?? '',
    });
    res.writeHead(genuine ? 200 : 401).end();
    if (genuine) delivered({ result: JSON.parse(body), job: req.headers['x-job-id'] });
    else console.log(`rejected a callback with a bad signature on ${req.url}`);
  });
});
const host = process.env.WEBHOOK_HOST ?? '127.0.0.1';
await new Promise((resolve) => receiver.listen(0, host, resolve));
const callbackUrl = `http://${host}:${receiver.address().port}/hooks/sandlot`;
console.log(`Receiver listening on ${callbackUrl}`);

const sandbox = await Sandbox.create({ template: 'code-interpreter' });
try {
  const started = await sandbox.runCodeAsync('import time\ntime.sleep(1)\nprint(sum(range(101)))', {
    language: 'python',
    name: 'async-sum',
    timeout: 60,
    callbackUrl,
    callbackHeaders: { 'X-Job-Id': 'job-42' },
    callbackSignatureSecret: secret,
  });
  console.log(`Accepted: process ${started.processId} (status: ${started.status})`);

  const timer = setTimeout(() => delivered(undefined), 60_000);
  const got = await delivery;
  clearTimeout(timer);
  if (!got) throw new Error('no signed callback arrived within 60 s');
  const { result, job } = got;
  console.log(`Signature verified for ${job}`);
  console.log(`Result: ${result.status}, exit code ${result.exit_code}, stdout: ${result.stdout.trim()}`);
  if (result.status !== 'completed') process.exitCode = 1;
} finally {
  await sandbox.kill();
  receiver.close();
}
