// The op reference tables of docs/ops.md, rendered from the definitions (scripts/gen-ops-doc.mjs writes them in;
// a test checks that the committed page matches).
import { OP_DEFINITIONS, FUSED_OP_TYPES } from './index.js';
import type { AttributeSpec } from './schema.js';

function defaultText(a: AttributeSpec): string {
  if (!a.default) return 'required';
  const v = a.default(2);
  if (Array.isArray(v)) return v.every((x) => x === v[0]) ? `all ${v[0] ?? ''}`.trim() : v.join(', ');
  return String(v);
}

function lengthText(a: AttributeSpec): string {
  if (a.kind !== 'ints') return a.kind;
  const n = a.length!(1);
  return `ints (${n === 1 ? 'r' : `${n}r`})`;
}

/** One markdown table per op: inputs, then attributes. */
export function renderOpReference(): string {
  const out: string[] = [];
  for (const t of FUSED_OP_TYPES) {
    const d = OP_DEFINITIONS[t];
    out.push(`### ${t}: ${d.summary}`, '', '| input | role | layout |', '|---|---|---|');
    for (const i of d.inputs) out.push(`| \`${i.name}\` | ${i.role} | \`${i.layout}\` |`);
    out.push('', '| attribute | type | default | specialises code | meaning |', '|---|---|---|---|---|');
    for (const a of d.attributes) out.push(`| \`${a.name}\` | ${lengthText(a)} | ${defaultText(a)} | ${a.specializes ? 'yes' : 'no'} | ${[a.doc, a.check?.must].filter(Boolean).join('; ')} |`);
    out.push('');
  }
  return out.join('\n');
}

export const REFERENCE_BEGIN = '<!-- op reference: generated from ops/ by scripts/gen-ops-doc.mjs; do not edit -->';
export const REFERENCE_END = '<!-- end of op reference -->';

/** The page with its generated block replaced by the current rendering. */
export function withReference(page: string): string {
  const a = page.indexOf(REFERENCE_BEGIN), b = page.indexOf(REFERENCE_END);
  const block = `${REFERENCE_BEGIN}\n${renderOpReference()}\n${REFERENCE_END}`;
  if (a < 0 || b < a) return `${page.trimEnd()}\n\n## Reference (from the op definitions)\n\n${block}\n`;
  return page.slice(0, a) + block + page.slice(b + REFERENCE_END.length);
}
