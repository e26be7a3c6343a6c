// What the passes after the rules leave undone, on every fixture: a fused node's epilogue that could still be
// absorbed (passes/epilogue.ts), or a routing pool on a fused op's value still a GlobalAveragePool
// (passes/routing-pool.ts). Each pass reads the facts of the model before the rewrites, which the rules' analysis
// has whole before the first edit (passes/driver.ts): what they find must not depend on what the rules happened to
// ask while matching. Until that held, RedNet's last PixelConvHead kept its BatchNormalization and Relu, and the
// CondConv network's routing pools after an absorbed epilogue stayed GlobalAveragePools.
import test from 'ava';
import { isDynconvDomain, isFusedOpType } from '../ops/index.js';
import { matchEpilogue } from '../passes/epilogue.js';
import { Facts } from '../passes/fused-facts.js';
import { Analysis } from '../src/analysis/analyze.js';
import { fuse, openModel } from '../src/pipeline.js';
import { fixtureEntries, fixturePath } from './helpers/paths.js';

const fusedModels = () => fixtureEntries().flatMap((e) => {
  const opened = openModel(fixturePath(e.name));
  return fuse(opened).changed ? [{ name: e.name, model: opened.model }] : [];
});

test('fuse: no fused node is left with an epilogue chain it could absorb, on any fixture', (t) => {
  let absorbed = 0;
  for (const { name, model } of fusedModels()) {
    const facts = new Facts(new Analysis(model), new Map());
    for (const n of model.graph.nodes) {
      if (!isDynconvDomain(n.domain) || !isFusedOpType(n.opType)) continue;
      if (n.attrInt('epilogue', 0) || n.proto.docString?.includes('epilogue')) absorbed++;
      const left = matchEpilogue(n, facts);
      t.is(left, undefined, `${name}: ${n.label} is still read by ${left?.chain.map((c) => c.label).join(', ')}`);
    }
  }
  t.true(absorbed >= 10, `fused nodes with an absorbed epilogue: ${absorbed}`);
});

test('fuse: no GlobalAveragePool is left on a value a fused op reads or writes, on any fixture', (t) => {
  let rewritten = 0;
  for (const { name, model } of fusedModels()) {
    for (const n of model.graph.nodes) {
      if (n.opType === 'ReduceMean' && n.name.includes('GlobalAveragePool')) rewritten++;
      if (n.opType !== 'GlobalAveragePool') continue;
      const x = n.inputs[0]!;
      const touched = (x.producer && isDynconvDomain(x.producer.domain)) || x.uses.some((u) => isDynconvDomain(u.node.domain));
      t.false(touched, `${name}: ${n.label} pools ${x.name}, which a fused op reads or writes`);
    }
  }
  t.true(rewritten >= 5, `routing pools made ReduceMean: ${rewritten}`);
});
