// Summaries of timing samples and round-robin interleaving of the variants being compared.
import { performance } from 'node:perf_hooks';

/** Nearest-rank percentile of an ascending array. */
export function percentile(sorted, p) {
  if (sorted.length === 0) return NaN;
  const rank = Math.ceil((p / 100) * sorted.length);
  return sorted[Math.min(sorted.length, Math.max(1, rank)) - 1];
}

export function summarize(samples) {
  const s = [...samples].sort((a, b) => a - b);
  const n = s.length;
  if (n === 0) return { n: 0 };
  const mid = n % 2 ? s[(n - 1) / 2] : (s[n / 2 - 1] + s[n / 2]) / 2;
  return {
    n,
    median: mid,
    p95: percentile(s, 95),
    p99: percentile(s, 99),
    min: s[0],
    max: s[n - 1],
    mean: s.reduce((a, b) => a + b, 0) / n,
  };
}

export const now = () => performance.now();

/** Times one async call in milliseconds. */
export async function timed(fn) {
  const t0 = performance.now();
  const value = await fn();
  return { ms: performance.now() - t0, value };
}

/**
 * Runs `fn(variant, round)` for every variant, `rounds` times, in round-robin order (the
 * starting variant rotates each round), so machine noise lands on every variant alike.
 * Returns { [variant]: { samples: number[], errors: string[] } }. Rounds below `warmup` are
 * run but not recorded.
 */
export async function interleave(variants, rounds, fn, { warmup = 0 } = {}) {
  const out = Object.fromEntries(variants.map((v) => [v, { samples: [], errors: [], byRound: [] }]));
  for (let r = 0; r < warmup + rounds; r++) {
    for (let i = 0; i < variants.length; i++) {
      const v = variants[(i + r) % variants.length];
      const t0 = performance.now();
      try {
        await fn(v, r);
        const ms = performance.now() - t0;
        if (r >= warmup) {
          out[v].samples.push(ms);
          out[v].byRound[r - warmup] = ms;
        }
      } catch (e) {
        if (r >= warmup) {
          out[v].errors.push(errorText(e));
          out[v].byRound[r - warmup] = NaN;
        }
      }
    }
  }
  return out;
}

/** Median of the per-round differences a[r] − b[r] (rounds where both succeeded). */
export function pairedDiff(a, b) {
  const d = [];
  for (let i = 0; i < Math.min(a.length, b.length); i++) if (Number.isFinite(a[i]) && Number.isFinite(b[i])) d.push(a[i] - b[i]);
  return summarize(d);
}

export function errorText(e) {
  if (!e) return String(e);
  const parts = [e.constructor?.name ?? 'Error', e.message];
  if (e.code) parts.push(`code=${e.code}`);
  const status = e.status ?? e.statusCode ?? e.response?.status;
  if (status) parts.push(`status=${status}`);
  return parts.join(': ');
}

export const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

/** Runs `tasks` (functions returning promises) with at most `limit` in flight. */
export async function pool(tasks, limit) {
  const results = new Array(tasks.length);
  let next = 0;
  async function worker() {
    while (next < tasks.length) {
      const i = next++;
      try {
        results[i] = { ok: true, value: await tasks[i]() };
      } catch (e) {
        results[i] = { ok: false, error: e };
      }
    }
  }
  await Promise.all(Array.from({ length: Math.min(limit, tasks.length) }, worker));
  return results;
}

/**
 * Waits until the machine is nearly idle (≥ 85 % idle over 250 ms), at most `maxMs`: killed
 * sandboxes leave work to the kernel (network namespaces are torn down asynchronously), which
 * would otherwise land on the next measurement. Returns the ms waited.
 */
export async function settle(maxMs = 10000) {
  const { readFileSync } = await import('node:fs');
  const cpu = () => {
    const f = readFileSync('/proc/stat', 'utf8').split('\n')[0].trim().split(/\s+/).slice(1).map(Number);
    return { idle: f[3] + f[4], total: f.reduce((a, b) => a + b, 0) };
  };
  const t0 = now();
  while (now() - t0 < maxMs) {
    const a = cpu();
    await sleep(250);
    const b = cpu();
    if ((b.idle - a.idle) / Math.max(1, b.total - a.total) >= 0.85) break;
  }
  return now() - t0;
}

/**
 * 95 % bootstrap interval of median(a) / median(b) (independent resampling, fixed seed), to
 * tell a real difference from noise.
 */
export function ratioCI(a, b, iterations = 1000) {
  if (!a.length || !b.length) return null;
  let x = 0x9e3779b9;
  const rnd = () => {
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    return (x >>> 0) / 4294967296;
  };
  const med = (arr) => {
    const s = Array.from({ length: arr.length }, () => arr[Math.floor(rnd() * arr.length)]).sort((p, q) => p - q);
    const n = s.length;
    return n % 2 ? s[(n - 1) / 2] : (s[n / 2 - 1] + s[n / 2]) / 2;
  };
  const r = Array.from({ length: iterations }, () => med(a) / med(b)).sort((p, q) => p - q);
  return [r[Math.floor(0.025 * iterations)], r[Math.floor(0.975 * iterations)]];
}
