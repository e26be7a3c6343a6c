// The function bodies of one fuse run: which body each fused node calls, and the FunctionProtos to add.
// A body is specialised to one spatial rank, to its epilogue (its inputs are the ones the epilogue reads) and,
// before opset 12, to the attribute values it reads. Functions are found by (domain, op type): the k-th body an op
// needs goes in domain com.dynconv.f<k> (ops/index.ts), so every site fuses and its node keeps the op type of its
// kernel.
import { DYNCONV_DOMAIN, DYNCONV_DOMAINS, DYNCONV_OPSET_VERSION, EPILOGUE_ATTRIBUTES, isDynconvDomain, isFusedOpType, type FusedOpType } from '../ops/index.js';
import type { Model } from '../src/ir/graph.js';
import { BAKED_ATTRIBUTES, BODY_FORM_ATTRIBUTES, cachedFunctionFor } from './function-bodies.js';

type Body = { key: string; rank: number; literals?: Record<string, number | number[]>; domain: string };

/** Baked at every opset: the epilogue's attributes and the ones that choose the body's form (cachedFunctionFor). */
const ALWAYS_BAKED = new Set([...EPILOGUE_ATTRIBUTES.map((a) => a.name), ...BODY_FORM_ATTRIBUTES]);

export class BodyRegistry {
  private readonly bodies = new Map<FusedOpType, Body[]>();
  readonly opset: number;

  constructor(private readonly model: Model) {
    this.opset = model.opsets.get('') ?? 0;
    // Bodies already in the model (a model fused before) keep their domains; new ones take the next.
    for (const f of model.functions) {
      if (isDynconvDomain(f.domain ?? '') && isFusedOpType(f.name ?? '')) this.of(f.name as FusedOpType).push({ key: 'existing', rank: -1, domain: f.domain! });
    }
  }

  private of(op: FusedOpType): Body[] {
    return this.bodies.get(op) ?? this.bodies.set(op, []).get(op)!;
  }

  /**
   * The domain of the body a node of `op` with these attributes calls (the attributes a body bakes in: the
   * epilogue's and kernel_norm always, the others before opset 12), or why it cannot have one.
   */
  admit(op: FusedOpType, rank: number, attrs: Readonly<Record<string, number | number[]>>): { leave: string } | { domain: string } {
    const baked = (k: string) => attrs[k] !== undefined && (ALWAYS_BAKED.has(k) || this.opset < 12);
    const literals: Record<string, number | number[]> = {};
    // the key lists the baked attributes in BAKED_ATTRIBUTES' order: the same attributes give the same key
    let key = String(rank);
    for (const k of BAKED_ATTRIBUTES) {
      if (!baked(k)) continue;
      literals[k] = attrs[k];
      key += `;${k}=${String(attrs[k])}`;
    }
    const list = this.of(op);
    const have = list.find((b) => b.key === key);
    if (have) return { domain: have.domain };
    const free = DYNCONV_DOMAINS.find((d) => !list.some((b) => b.domain === d));
    if (!free) return { leave: `the ${op} sites of this model need more than ${DYNCONV_DOMAINS.length} function bodies (${this.opset < 12 ? 'opset 11 bakes attributes into them; re-export with opset 13 or newer' : 'spatial ranks and epilogues'})` };
    list.push({ key, rank, literals, domain: free });
    return { domain: free };
  }

  /** Adds the body of every (domain, op) a node of the graph calls and the model lacks. */
  write(): void {
    const used = new Set(this.model.graph.nodes.filter((n) => isDynconvDomain(n.domain)).map((n) => `${n.domain}\u0000${n.opType}`));
    for (const [op, list] of this.bodies) {
      for (const body of list) {
        if (body.rank < 0 || this.model.hasFunction(body.domain, op) || !used.has(`${body.domain}\u0000${op}`)) continue;
        this.model.addFunction(cachedFunctionFor(op, this.opset, body.rank, body.literals, body.domain));
        this.model.opsets.set(body.domain, DYNCONV_OPSET_VERSION);
      }
    }
    this.model.opsets.set(DYNCONV_DOMAIN, DYNCONV_OPSET_VERSION);
    this.model.requireIrVersion(8); // model-local functions need IR 8
  }
}
