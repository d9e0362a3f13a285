// Bursts: `n` × (create → first run) started at once, timed from the burst's start to each
// sandbox's first successful run; several bursts of one variant pool their samples.
import { errorText, now, settle, summarize } from './stats.mjs';

/**
 * One burst, after the machine settles: `create()` then `run(handle)` for `n` sandboxes at
 * once; every sandbox is killed after (`kill(handle)`). Resolves with the wall time and each
 * sandbox's `{ ok, ms, error? }`.
 */
export async function burstOnce(n, { create, run, kill }) {
  await settle();
  const handles = [];
  const t0 = now();
  const results = await Promise.all(
    Array.from({ length: n }, async () => {
      const s0 = now();
      try {
        const h = await create();
        handles.push(h);
        await run(h);
        return { ok: true, ms: now() - s0 };
      } catch (e) {
        return { ok: false, ms: now() - s0, error: errorText(e) };
      }
    }),
  );
  const wall = now() - t0;
  await Promise.all(handles.map((h) => kill(h).catch(() => {})));
  return { wall, results };
}

/** The bursts of one variant, pooled. */
export class PooledBursts {
  ok = [];
  errors = [];
  walls = [];
  medians = [];

  add({ wall, results }) {
    const good = results.filter((x) => x.ok).map((x) => x.ms);
    this.ok.push(...good);
    this.walls.push(wall);
    this.medians.push(summarize(good).median);
    this.errors.push(...results.filter((x) => !x.ok).map((x) => x.error));
  }

  /** The pooled samples' summary, with each burst's median and the bursts' median wall time. */
  summary() {
    const attempts = this.ok.length + this.errors.length;
    return {
      ...summarize(this.ok),
      bursts: this.walls.length,
      attempts,
      successRate: this.ok.length / attempts,
      wall: summarize(this.walls).median,
      medians: this.medians,
      errors: this.errors.length,
      firstError: this.errors[0],
    };
  }
}
