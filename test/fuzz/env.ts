// The folder a fuzz case runs in, and the checks made after it ran.
//
//   ROOT/outside.bin            a file outside the model's folder (external data must never reach it)
//   ROOT/in/model.onnx          the case's model
//   ROOT/in/weights.bin         side files a model may legitimately point at
//   ROOT/in/sub/data.bin
//   ROOT/in/link-in.bin  -> weights.bin          (a link that stays inside: allowed)
//   ROOT/in/link-out.bin -> ../outside.bin       (a link that escapes: refused)
//   ROOT/in/dirlink      -> ..                   (a folder link that escapes)
//   ROOT/in/fifo                                 (a named pipe: reading it would block forever)
//   ROOT/out/                   where fuse writes; must be empty after a failed run
import { execFileSync } from 'node:child_process';
import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import type { FuzzCase } from './mutate.js';

export interface CaseDir {
  root: string;
  in: string;
  out: string;
}

const STATIC_IN = ['dirlink', 'fifo', 'link-in.bin', 'link-out.bin', 'sub', 'weights.bin'];

export function makeCaseDir(root: string): CaseDir {
  fs.rmSync(root, { recursive: true, force: true });
  const dir: CaseDir = { root, in: path.join(root, 'in'), out: path.join(root, 'out') };
  fs.mkdirSync(path.join(dir.in, 'sub'), { recursive: true });
  fs.mkdirSync(dir.out, { recursive: true });
  const data = new Uint8Array(8192);
  for (let i = 0; i < data.length; i++) data[i] = (i * 37) & 0xff;
  fs.writeFileSync(path.join(root, 'outside.bin'), data);
  fs.writeFileSync(path.join(dir.in, 'weights.bin'), data);
  fs.writeFileSync(path.join(dir.in, 'sub', 'data.bin'), data.subarray(0, 1024));
  fs.symlinkSync('weights.bin', path.join(dir.in, 'link-in.bin'));
  fs.symlinkSync('../outside.bin', path.join(dir.in, 'link-out.bin'));
  fs.symlinkSync('..', path.join(dir.in, 'dirlink'));
  try {
    execFileSync('mkfifo', [path.join(dir.in, 'fifo')], { stdio: 'ignore' });
  } catch {
    fs.writeFileSync(path.join(dir.in, 'fifo'), ''); // no mkfifo here: a plain file stands in
  }
  return dir;
}

export function hash(bytes: Uint8Array): string {
  return crypto.createHash('sha256').update(bytes).digest('hex');
}

/** Writes the case's files, leaving the static ones; empties out/. */
export function prepareCase(dir: CaseDir, c: FuzzCase): void {
  for (const name of fs.readdirSync(dir.in)) if (!STATIC_IN.includes(name)) fs.rmSync(path.join(dir.in, name), { recursive: true, force: true });
  fs.rmSync(dir.out, { recursive: true, force: true });
  fs.mkdirSync(dir.out);
  fs.writeFileSync(path.join(dir.in, 'model.onnx'), c.model);
  for (const [name, bytes] of Object.entries(c.side)) fs.writeFileSync(path.join(dir.in, name), bytes);
}

export function expandArgs(dir: CaseDir, c: FuzzCase): string[] {
  return [c.command, ...c.args.map((a) => a.replaceAll('{in}', dir.in).replaceAll('{out}', dir.out))];
}

/** The -o argument of a fuse case, expanded. */
export function outputOf(dir: CaseDir, c: FuzzCase): string | undefined {
  const i = c.args.indexOf('-o');
  return i >= 0 ? expandArgs(dir, c)[i + 2] : undefined;
}

function listFiles(d: string): string[] {
  const out: string[] = [];
  const walk = (p: string, rel: string) => {
    for (const e of fs.readdirSync(p, { withFileTypes: true })) {
      const r = rel ? `${rel}/${e.name}` : e.name;
      if (e.isDirectory()) walk(path.join(p, e.name), r);
      else out.push(r);
    }
  };
  walk(d, '');
  return out.sort();
}

export type FailureKind = 'internal' | 'bad-exit' | 'stack' | 'unclear-error' | 'hang' | 'slow' | 'oom' | 'uncaught' | 'signal' | 'file-left' | 'input-changed' | 'invalid-output' | 'wrong-exit';

export interface Violation {
  kind: FailureKind;
  detail: string;
}

const STACK = /^\s+at .+(\(.*:\d+:\d+\)|:\d+:\d+)\s*$/m;

/** What a finished run did wrong, judged from its exit code, its streams and the files it left. */
export function judge(dir: CaseDir, c: FuzzCase, code: number | null, stdout: string, stderr: string): Violation[] {
  const v: Violation[] = [];
  const firstErr = stderr.split('\n').find((l) => l.trim()) ?? '';
  if (STACK.test(stderr) || STACK.test(stdout)) v.push({ kind: 'stack', detail: (stderr.match(STACK) ?? stdout.match(STACK))![0].trim() });
  // emit ends with 1 when the model has no fused ops to emit kernels for.
  const allowed = c.command === 'emit' ? [0, 1, 2] : [0, 2];
  if (code === 3) v.push({ kind: 'internal', detail: firstErr });
  else if (!allowed.includes(code ?? -1)) v.push({ kind: 'bad-exit', detail: `exit ${code}: ${firstErr}` });
  if (c.expectExit !== undefined && code !== c.expectExit && code !== 3) v.push({ kind: 'wrong-exit', detail: `expected exit ${c.expectExit}, got ${code}: ${firstErr}` });
  if (code === 1 || code === 2) {
    const lines = stderr.split('\n').filter((l) => l.trim());
    const last = lines[lines.length - 1] ?? '';
    if (!/^dynconv( [a-z]+)?: \S/.test(last) && !/^usage: /.test(stdout)) v.push({ kind: 'unclear-error', detail: `stderr: ${JSON.stringify(stderr.slice(0, 300))}` });
    else if (last.length > 2000) v.push({ kind: 'unclear-error', detail: `error line of ${last.length} characters` });
    // eslint-disable-next-line no-control-regex
    else if (/[\u0000-\u0008\u000b-\u001f\u007f-\u009f\u202a-\u202e\u2066-\u2069]/.test(stderr)) v.push({ kind: 'unclear-error', detail: `control characters on stderr: ${JSON.stringify(stderr.slice(0, 300))}` });
  }
  // Files: the input is untouched, nothing new beside it, and a failed run leaves nothing in out/.
  const modelNow = fs.existsSync(path.join(dir.in, 'model.onnx')) ? fs.readFileSync(path.join(dir.in, 'model.onnx')) : undefined;
  if (!modelNow || hash(modelNow) !== hash(c.model)) v.push({ kind: 'input-changed', detail: 'the input model changed' });
  const expectedIn = [...STATIC_IN.filter((n) => n !== 'sub' && n !== 'dirlink'), 'dirlink', 'model.onnx', 'sub/data.bin', ...Object.keys(c.side)].sort();
  const inNow = listFiles(dir.in);
  const strayIn = inNow.filter((f) => !expectedIn.includes(f));
  if (strayIn.length) v.push({ kind: 'file-left', detail: `new files beside the input: ${strayIn.join(', ')}` });
  const outNow = listFiles(dir.out);
  if (code !== 0 && outNow.length) v.push({ kind: 'file-left', detail: `exit ${code} left ${outNow.join(', ')}` });
  const temps = outNow.filter((f) => /\.tmp-/.test(f));
  if (code === 0 && temps.length) v.push({ kind: 'file-left', detail: `temporary files left: ${temps.join(', ')}` });
  if (code === 0 && c.command === 'emit') {
    // Every emitted file lies inside --out-dir.
    const i = c.args.indexOf('--out-dir');
    const rel = path.relative(dir.out, expandArgs(dir, c)[i + 2]);
    const outside = outNow.filter((f) => rel !== '' && !f.startsWith(`${rel}/`));
    if (outside.length) v.push({ kind: 'file-left', detail: `emitted outside --out-dir: ${outside.join(', ')}` });
  }
  return v;
}

/** Normalises a message into a signature: numbers and quoted names do not make two crashes different. */
export function signature(kind: string, command: string, detail: string): string {
  return `${kind}:${command}:${detail.replace(/"(?:[^"\\]|\\.)*"/g, 'S').replace(/\/[^\s:)]+/g, 'P').replace(/-?\d+(\.\d+)?(e[+-]?\d+)?/g, 'N').slice(0, 200)}`;
}
