// Reading argument values (numbers, environment, code files) and formatting durations
// and times for the `sandlot` command line.

import fs from 'node:fs';

import { UsageError } from './output.mjs';

// Argument helpers.

export function positiveInt(value, flag, command) {
  if (!/^[1-9][0-9]*$/.test(value ?? '')) throw new UsageError(`${flag} takes a positive whole number of seconds, not '${value}'`, command);
  return Number(value);
}

export function positiveSeconds(value, flag, command) {
  const n = Number(value);
  if (!/^[0-9]*\.?[0-9]+$/.test(value ?? '') || !(n > 0)) throw new UsageError(`${flag} takes a positive number of seconds, not '${value}'`, command);
  return n;
}

export function envVars(list, command) {
  if (!list?.length) return undefined;
  const env = {};
  for (const item of list) {
    const eq = item.indexOf('=');
    const key = eq < 0 ? item : item.slice(0, eq);
    if (!key) throw new UsageError(`--env takes KEY=VALUE (or KEY), not '${item}'`, command);
    if (eq < 0 && process.env[key] === undefined) throw new UsageError(`--env ${key}: ${key} is not set in this environment`, command);
    env[key] = eq < 0 ? process.env[key] : item.slice(eq + 1);
  }
  return env;
}

export const LANGUAGE_BY_EXTENSION = { py: 'python', js: 'javascript', mjs: 'javascript', cjs: 'javascript', sh: 'bash', bash: 'bash' };

export async function readCode(file, out) {
  if (file === '-') {
    if (process.stdin.isTTY) out.note('reading the code from stdin (end it with Ctrl-D)');
    const chunks = [];
    for await (const chunk of process.stdin) chunks.push(chunk);
    return Buffer.concat(chunks).toString('utf8');
  }
  try {
    return fs.readFileSync(file, 'utf8');
  } catch (e) {
    throw new UsageError(`cannot read ${file}: ${e.code === 'ENOENT' ? 'no such file' : e.code === 'EISDIR' ? 'is a directory' : e.message}`, 'run');
  }
}

// ---------------------------------------------------------------------------------------
// Formatting.

/** Seconds, as 0.53s, 12.0s, 3m04s, 2h05m. */
export function formatSeconds(s) {
  if (s === undefined || !Number.isFinite(s) || s < 0) return '-';
  if (s < 10) return `${s.toFixed(2)}s`;
  if (s < 60) return `${s.toFixed(1)}s`;
  const m = Math.floor(s / 60);
  if (m < 60) return `${m}m${String(Math.floor(s % 60)).padStart(2, '0')}s`;
  return `${Math.floor(m / 60)}h${String(m % 60).padStart(2, '0')}m`;
}

export function processDuration(p) {
  if (p.executionTime !== undefined) return p.executionTime;
  if (!p.startedAt) return undefined;
  const end = p.completedAt ? Date.parse(p.completedAt) : Date.now();
  return (end - Date.parse(p.startedAt)) / 1000;
}

/** "5m ago" / "in 5m" for an RFC 3339 time. */
export function relative(time) {
  const ms = Date.parse(time ?? '');
  if (Number.isNaN(ms)) return '-';
  const s = (ms - Date.now()) / 1000;
  const text = formatSeconds(Math.abs(s)).replace(/\.\d+s$/, 's');
  return s < 0 ? `${text} ago` : `in ${text}`;
}

/** A process record without its output (for listings). */
export function withoutOutput(p) {
  const { stdout, stderr, ...rest } = p;
  return rest;
}
