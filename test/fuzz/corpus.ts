// The fuzz corpus: the fixture models, and the same models fused (the input `emit` takes).
import { fuseModel } from '../../passes/fuse.js';
import { buildModel } from '../../src/ir/build.js';
import { loadModelFromBytes, saveModelToBytes } from '../../src/onnx/io.js';
import { loadCorpus, type Corpus, type CorpusEntry } from './mutate.js';

/** Fuses each model that has sites to fuse (in name order); models that fuse nothing are left out. */
export function fuseCorpus(models: CorpusEntry[]): CorpusEntry[] {
  const fused: CorpusEntry[] = [];
  for (const m of models) {
    try {
      const loaded = loadModelFromBytes(m.bytes, m.name);
      const model = buildModel(loaded);
      if (!fuseModel(model).fused.length) continue;
      model.toProto();
      fused.push({ name: `${m.name} (fused)`, bytes: saveModelToBytes(loaded) });
    } catch {
      // a fixture that does not fuse here is simply not in the emit corpus
    }
  }
  return fused;
}

export function buildCorpus(root: string, opts: { fused?: boolean } = {}): Corpus {
  const models = loadCorpus(root);
  return { models, fused: opts.fused === false ? [] : fuseCorpus(models) };
}
