// How a site is shown: JSON for tools, one line (plus reasons) for people.
import { isFusable, type Site } from '../../passes/site.js';

export interface SiteJson {
  family: string;
  op: string | null;
  fusable: boolean;
  node: { name: string; opType: string };
  generator: string[];
  kernel: number[] | null;
  strides: number[] | null;
  pads: number[] | null;
  dilations: number[] | null;
  groups: number | null;
  transpose: boolean;
  upsample: number | null;
  experts: number | null;
  perSample: boolean;
  perPixel: boolean;
  batch: string;
  explain: string[];
  /** For a site that is generic or not fused: the rule that came closest, where and why it failed. */
  closest: { rule: string; node: string; reason: string } | null;
}

export function siteJson(s: Site): SiteJson {
  const p = s.params;
  return {
    family: s.family,
    op: s.op ?? null,
    fusable: isFusable(s),
    node: { name: s.anchor.name, opType: s.anchor.opType },
    generator: s.generator.map((n) => n.name || n.outputs[0]?.name || n.opType),
    kernel: p?.kernel ?? null,
    strides: p?.strides ?? null,
    pads: p?.pads ?? null,
    dilations: p?.dilations ?? null,
    groups: p?.group ?? null,
    transpose: p?.transpose ?? false,
    upsample: p?.upsample ?? null,
    experts: s.experts ?? null,
    perSample: s.perSample,
    perPixel: s.perPixel,
    batch: s.batch,
    explain: [...s.explain, ...(s.notFused && !s.explain.some((e) => e.includes(s.notFused!)) ? [`not fused: ${s.notFused}`] : [])],
    closest: s.closest ? { rule: s.closest.rule, node: s.closest.node.name, reason: s.closest.reason } : null,
  };
}

export function formatSite(s: SiteJson, i: number, explain: boolean): string {
  const k = s.kernel ? `k${s.kernel.join('x')}` : 'k?';
  const extra = [s.strides && s.strides.some((x) => x !== 1) ? `s${s.strides.join('x')}` : '', s.dilations && s.dilations.some((x) => x !== 1) ? `d${s.dilations.join('x')}` : '', s.groups && s.groups !== 1 ? `g${s.groups}` : '', s.transpose ? 'transposed' : '', s.upsample && s.upsample > 1 ? `up${s.upsample}` : '', s.experts ? `${s.experts} experts` : ''].filter(Boolean).join(' ');
  const line = `  #${i + 1} ${s.family.padEnd(9)} ${JSON.stringify(s.node.name)} (${s.node.opType}) ${k} ${extra} ${s.perPixel ? 'per-pixel' : 'per-sample'}, batch: ${s.batch} -> ${s.fusable ? s.op : 'not fused'}`;
  const why = explain || !s.fusable ? s.explain.map((e) => `      ${e}`) : [];
  return [line.replace(/ +/g, ' '), ...why].join('\n');
}
