// `check`: scan, fuse and validate in one, for CI. One report per model, in the order given.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { Analysis } from '../analysis/analyze.js';
import { DynconvError, EXIT_BAD_INPUT } from '../errors.js';
import { buildModel } from '../ir/build.js';
import { loadModel, saveModel } from '../onnx/io.js';
import { fuseModel } from '../../passes/fuse.js';
import { scanModel } from '../../passes/scan.js';
import { validateModels, type ValidateResult } from '../validate/validate.js';
import { siteJson, type SiteJson } from './site-report.js';

export interface ModelCheck {
  file: string;
  ok: boolean;
  sites: SiteJson[];
  fused: number;
  unfused: number;
  validation?: ValidateResult;
  error?: string;
  errorKind?: 'input' | 'check';
}

export interface CheckReport {
  ok: boolean;
  models: ModelCheck[];
}

export interface CheckOptions {
  sizes?: Record<string, number>;
  kernels?: 'wgsl' | 'ort';
  jobs?: number;
  onProgress?: (done: number, total: number, file: string) => void;
}

export async function checkModel(file: string, opts: CheckOptions): Promise<ModelCheck> {
  const result: ModelCheck = { file, ok: false, sites: [], fused: 0, unfused: 0 };
  const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'dynconv-check-'));
  try {
    const loaded = loadModel(file);
    const model = buildModel(loaded);
    result.sites = scanModel(model, new Analysis(model)).map(siteJson);
    const fuse = fuseModel(model);
    result.fused = fuse.fused.length;
    result.unfused = fuse.notFused.length;
    model.toProto();
    const fusedPath = path.join(tmp, 'fused.onnx');
    saveModel(loaded, fusedPath);
    result.validation = await validateModels(file, fusedPath, { sizes: opts.sizes, kernels: opts.kernels });
    result.ok = result.unfused === 0 && result.validation.ok;
  } catch (e) {
    if (!(e instanceof DynconvError)) throw e;
    result.error = e.message;
    result.errorKind = e.exitCode === EXIT_BAD_INPUT ? 'input' : 'check';
  } finally {
    fs.rmSync(tmp, { recursive: true, force: true });
  }
  return result;
}

export async function checkModels(files: string[], opts: CheckOptions): Promise<CheckReport> {
  const models: ModelCheck[] = new Array(files.length);
  let next = 0, done = 0;
  const worker = async () => {
    while (next < files.length) {
      const i = next++;
      models[i] = await checkModel(files[i], opts);
      opts.onProgress?.(++done, files.length, files[i]);
    }
  };
  await Promise.all(Array.from({ length: Math.min(opts.jobs ?? 1, files.length) }, worker));
  return { ok: models.every((m) => m.ok), models };
}

export function formatCheck(r: CheckReport): string {
  const lines: string[] = [];
  for (const m of r.models) {
    if (m.error) { lines.push(`FAIL ${m.file}: ${m.error}`); continue; }
    const v = m.validation!;
    const worst = v.outputs.reduce((w, o) => Math.max(w, o.relL2), 0);
    lines.push(`${m.ok ? 'ok  ' : 'FAIL'} ${m.file}: ${m.sites.length} site${m.sites.length === 1 ? '' : 's'}, ${m.fused} fused${m.unfused ? `, ${m.unfused} NOT fused` : ''}; outputs ${v.ok ? 'match' : 'DIFFER'} (worst rel-L2 ${worst.toExponential(2)})`);
    for (const s of m.sites) if (!s.fusable) lines.push(`     unfused ${JSON.stringify(s.node.name)}: ${s.explain.join('; ')}`);
  }
  const failed = r.models.filter((m) => !m.ok).length;
  lines.push(`${r.models.length - failed} of ${r.models.length} model${r.models.length === 1 ? '' : 's'} ok`);
  return lines.join('\n');
}

const xmlEscape = (s: string) => s.replace(/[<>&"']/g, (c) => ({ '<': '&lt;', '>': '&gt;', '&': '&amp;', '"': '&quot;', "'": '&apos;' })[c]!).replace(/[\u0000-\u0008\u000b\u000c\u000e-\u001f]/g, '');

export function junitReport(r: CheckReport): string {
  const cases = r.models.map((m) => {
    const failure = m.ok ? '' : `<failure message="${xmlEscape(m.error ?? (m.unfused ? `${m.unfused} site(s) not fused` : 'outputs differ'))}"/>`;
    return `  <testcase classname="dynconv.check" name="${xmlEscape(m.file)}">${failure}</testcase>`;
  });
  return `<?xml version="1.0" encoding="UTF-8"?>\n<testsuite name="dynconv check" tests="${r.models.length}" failures="${r.models.filter((m) => !m.ok).length}">\n${cases.join('\n')}\n</testsuite>\n`;
}
