// `npm run fuzz [-- COUNT] [--seed S] [--start I] [--jobs N] [--spawn-every K] [--save DIR] [--case I]`
//
// A long fuzz campaign over the fixture corpus: COUNT cases (default 100000) through inspect, scan, fuse and emit,
// in-process on worker threads, every K-th (default 250) as a separate dynconv process. Shows progress on
// stderr when stderr is a terminal; prints a summary (cases, exits by code, slowest case, crashes found).
// Each distinct crash is saved (model, side files and case.json) under DIR (default tmp/fuzz-crashes), ready
// to be moved to fixtures/crashes/. `--case I` regenerates case I and prints it instead.
// Exit: 0 no failure, 1 failures found, 2 usage.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { terminalProgress } from '../../src/cli/progress.js';
import { ROOT } from '../helpers/paths.js';
import { signature } from './env.js';
import { buildCorpus } from './corpus.js';
import { makeCase, type FuzzCase } from './mutate.js';
import { rerunAlone, timingOnly } from './confirm.js';
import { CPU_LIMIT_MS } from './cpu.js';
import { formatFailure, runCampaign, type CaseResult, type Summary } from './runner.js';

/** The campaign's progress line (on a terminal only). */
const progress = terminalProgress('fuzz');

/** Writes a case as a crash fixture folder (the layout of fixtures/crashes/, see its README). */
export function saveCase(dir: string, c: FuzzCase, failure: Pick<CaseResult, 'violations' | 'stack' | 'code'>): void {
  fs.mkdirSync(dir, { recursive: true });
  fs.writeFileSync(path.join(dir, 'model.onnx'), c.model);
  for (const [name, bytes] of Object.entries(c.side)) fs.writeFileSync(path.join(dir, name), bytes);
  const json = {
    command: c.command,
    args: c.args,
    ...(c.expectExit !== undefined ? { expectExit: c.expectExit } : {}),
    description: `${c.source}: ${c.mutations.join('; ')}`,
    fix: '(to be written)',
    found: { code: failure.code, violations: failure.violations, ...(failure.stack ? { stack: failure.stack } : {}) },
    origin: { seed: c.seed, index: c.index, source: c.source, mutations: c.mutations },
    side: Object.keys(c.side),
  };
  fs.writeFileSync(path.join(dir, 'case.json'), JSON.stringify(json, null, 2) + '\n');
}

function crashFolder(r: CaseResult, seed: number): string {
  return `${r.violations[0].kind}-${r.command}-s${seed}-c${r.index}`;
}

function formatSummary(s: Summary, seed: number, crashes: Map<string, CaseResult[]>, saveDir: string): string {
  const rate = s.ms ? (s.cases / (s.ms / 1000)).toFixed(1) : '?';
  const exits = Object.entries(s.exits).sort(([a], [b]) => a.localeCompare(b)).map(([k, v]) => `${k === 'none' ? 'killed' : `exit ${k}`}: ${v}`).join(', ');
  const lines = [
    `fuzz campaign: seed ${seed}, ${s.cases} cases (${s.spawned} as separate processes) in ${(s.ms / 1000).toFixed(1)} s (${rate} cases/s)`,
    `exits: ${exits}`,
  ];
  if (s.slowest) lines.push(`slowest: case ${s.slowest.index} ${Math.round(s.slowest.cpuMs)} ms of CPU, ${Math.round(s.slowest.ms)} ms wall-clock (${s.slowest.spawned ? 'process' : 'in-process'}, ${s.slowest.command}, from ${s.slowest.source}; ${s.slowest.mutations.join('; ')})`);
  lines.push(`failures: ${s.failures.length} case${s.failures.length === 1 ? '' : 's'}; crashes found: ${crashes.size} distinct${crashes.size ? ` (saved under ${saveDir})` : ''}`);
  for (const [sig, rs] of crashes) lines.push(`  ${rs.length}x ${sig}\n     first: ${formatFailure(rs[0])}${rs.length > 1 ? `\n     cases: ${rs.slice(0, 20).map((r) => r.index).join(', ')}${rs.length > 20 ? ', ...' : ''}` : ''}`);
  return lines.join('\n');
}

async function campaign(argv: string[]): Promise<number> {
  let parsed;
  try {
    parsed = parseArgs({
      args: argv,
      allowPositionals: true,
      options: { seed: { type: 'string' }, start: { type: 'string' }, jobs: { type: 'string' }, 'spawn-every': { type: 'string' }, save: { type: 'string' }, case: { type: 'string' }, 'timeout-ms': { type: 'string' } },
    });
  } catch (e) {
    process.stderr.write(`fuzz: ${(e as Error).message}\n`);
    return 2;
  }
  const v = parsed.values;
  const num = (s: string | undefined, fallback: number, what: string) => {
    const n = s === undefined ? fallback : Number(s);
    if (!Number.isSafeInteger(n) || n < 0) throw new Error(`${what}: expected a whole number, got ${JSON.stringify(s)}`);
    return n;
  };
  let count: number, seed: number, start: number, jobs: number, spawnEvery: number, timeoutMs: number;
  try {
    count = num(parsed.positionals[0], 100_000, 'COUNT');
    seed = num(v.seed, 1, '--seed');
    start = num(v.start, 0, '--start');
    jobs = Math.max(1, num(v.jobs, Math.min(os.availableParallelism(), 4), '--jobs'));
    spawnEvery = num(v['spawn-every'], 250, '--spawn-every');
    timeoutMs = num(v['timeout-ms'], CPU_LIMIT_MS, '--timeout-ms'); // CPU time of a case
  } catch (e) {
    process.stderr.write(`fuzz: ${(e as Error).message}\n`);
    return 2;
  }
  const saveDir = path.resolve(v.save ?? path.join(ROOT, 'tmp', 'fuzz-crashes'));
  const corpus = buildCorpus(ROOT);

  if (v.case !== undefined) {
    const c = makeCase(corpus, seed, num(v.case, 0, '--case'));
    process.stdout.write(`case ${c.index} (seed ${seed}): dynconv ${c.command} ${c.args.join(' ')}\n  from ${c.source}: ${c.mutations.join('; ')}\n  model: ${c.model.length} bytes${Object.keys(c.side).length ? `, side files: ${Object.keys(c.side).join(', ')}` : ''}\n`);
    const s = await runCampaign({ root: ROOT, corpus, seed, start: c.index, count: 1, jobs: 1, spawnEvery: spawnEvery === 1 ? 1 : 0, timeoutMs });
    const r = s.failures[0];
    process.stdout.write(r ? `${formatFailure(r)}\n` : `ok: exit ${Object.keys(s.exits)[0]} in ${Math.round(s.slowest?.cpuMs ?? 0)} ms of CPU, ${Math.round(s.slowest?.ms ?? 0)} ms wall-clock\n`);
    if (r) { saveCase(path.join(saveDir, `case-${seed}-${c.index}`), c, r); process.stdout.write(`saved to ${path.join(saveDir, `case-${seed}-${c.index}`)}\n`); }
    return r ? 1 : 0;
  }

  const crashes = new Map<string, CaseResult[]>();
  let lastDraw = 0;
  let failures = 0;
  const t0 = Date.now();
  const summary = await runCampaign({
    root: ROOT, corpus, seed, start, count, jobs, spawnEvery, timeoutMs,
    onResult: (r, done, total) => {
      for (const viol of r.violations.slice(0, 1)) {
        const sig = signature(viol.kind, r.command, r.stack ?? viol.detail);
        const list = crashes.get(sig);
        if (list) { list.push(r); continue; }
        crashes.set(sig, [r]);
        const c = makeCase(corpus, seed, r.index);
        saveCase(path.join(saveDir, crashFolder(r, seed)), c, r);
      }
      if (r.violations.length) failures++;
      const now = Date.now();
      if (now - lastDraw > 200 || done === total) {
        lastDraw = now;
        const rate = done / Math.max(0.001, (now - t0) / 1000);
        const eta = (total - done) / Math.max(rate, 0.001);
        progress.stage(`${done}/${total} cases, ${rate.toFixed(0)}/s, ${failures} failing, ${crashes.size} distinct crashes, eta ${Math.round(eta)} s`);
      }
    },
  });
  progress.clear();
  // Cases stopped for time get a second run, alone, judged by CPU time.
  const underLoad: { r: CaseResult; ms: number }[] = [];
  for (const r of [...summary.failures]) {
    if (!timingOnly(r.violations)) continue;
    const again = rerunAlone(ROOT, makeCase(corpus, seed, r.index), timeoutMs);
    if (again.violations.length) continue;
    underLoad.push({ r, ms: again.ms });
    summary.failures.splice(summary.failures.indexOf(r), 1);
    for (const [sig, list] of crashes) {
      const k = list.indexOf(r);
      if (k < 0) continue;
      list.splice(k, 1);
      if (k === 0) {
        // r was the case saved for this failure: the next one (if any) is saved instead.
        fs.rmSync(path.join(saveDir, crashFolder(r, seed)), { recursive: true, force: true });
        if (list.length) saveCase(path.join(saveDir, crashFolder(list[0], seed)), makeCase(corpus, seed, list[0].index), list[0]);
      }
      if (!list.length) crashes.delete(sig);
    }
  }
  process.stdout.write(formatSummary(summary, seed, crashes, saveDir) + '\n');
  if (underLoad.length) process.stdout.write(`over the limit only under load (run alone: ${underLoad.map((u) => `case ${u.r.index} ${Math.round(u.ms)} ms`).join(', ')})\n`);
  return summary.failures.length ? 1 : 0;
}

// Ctrl-C: the workers (same process group) stop too; exiting runs the runner's clean-up of its folders.
process.on('SIGINT', () => {
  progress.clear();
  process.stderr.write('fuzz: interrupted\n');
  process.exit(130);
});

campaign(process.argv.slice(2)).then(
  (code) => { process.exitCode = code; },
  (e) => { process.stderr.write(`fuzz: ${(e as Error).stack ?? e}\n`); process.exitCode = 2; },
);
