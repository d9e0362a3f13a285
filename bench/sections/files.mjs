// §4 Files: a 100 MB upload (multipart, streamed to the sandbox's disk) and download (streamed
// out) through sandlotd, against a host `cp` of the same bytes, interleaved in the same run.
import { execFile } from 'node:child_process';
import crypto from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { rawClient } from '../lib/clients.mjs';
import { startServer } from '../lib/server.mjs';
import { interleave, summarize } from '../lib/stats.mjs';

const SIZE = 100 * 1000 * 1000;

function cp(from, to) {
  return new Promise((resolve, reject) => execFile('cp', [from, to], (err) => (err ? reject(err) : resolve())));
}

export async function fileTransfer(ctx) {
  const server = await startServer({});
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'sandlot-bench-files-'));
  try {
    const raw = rawClient(server);
    const box = await raw.create();
    const source = path.join(dir, 'data.bin');
    fs.writeFileSync(source, crypto.randomBytes(SIZE));
    const auth = { Authorization: `Bearer ${box.token}` };
    const variants = {
      'host cp (page cache)': () => cp(source, path.join(dir, 'copy.bin')),
      'upload via sandlotd (POST /files/upload)': async () => {
        const form = new FormData();
        form.append('path', '/workspace/data.bin');
        form.append('file', await fs.openAsBlob(source), 'data.bin');
        const res = await fetch(`${box.host}/files/upload`, { method: 'POST', headers: auth, body: form });
        if (!res.ok) throw new Error(`upload: HTTP ${res.status} ${await res.text()}`);
      },
      'download via sandlotd (GET /files/download)': async () => {
        const res = await fetch(`${box.host}/files/download?path=/workspace/data.bin`, { headers: auth });
        if (!res.ok) throw new Error(`download: HTTP ${res.status}`);
        let n = 0;
        for await (const chunk of res.body) n += chunk.length;
        if (n !== SIZE) throw new Error(`download: ${n} bytes of ${SIZE}`);
      },
    };
    // The download needs the file in place before its first round.
    await variants['upload via sandlotd (POST /files/upload)']();
    const rounds = ctx.quick ? 3 : 7;
    const res = await interleave(Object.keys(variants), rounds, (v) => variants[v](), { warmup: 1 });
    await raw.kill(box).catch(() => {});
    const rows = Object.entries(res).map(([op, slot]) => {
      const s = summarize(slot.samples);
      return { op, ...s, errors: slot.errors.length, firstError: slot.errors[0], mbPerSec: SIZE / 1e6 / (s.median / 1000) };
    });
    const host = rows[0].median;
    for (const r of rows) r.vsHost = r.median / host;
    return { rounds, sizeMB: SIZE / 1e6, rows };
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
    await server.stop();
  }
}
