// Child of test/web-node.test.ts: runs emitted web folders in Node, with onnxruntime-node for the segments and
// the npm `webgpu` package (Dawn) for the kernels. Started as `node --no-opt` (webgpu 0.6.2 aborts at random
// when optimised JS runs between submissions). argv: REQUEST_JSON_FILE; prints one JSON line.
//   request: { jobs: [{ index: FILE, runs: [feeds as PageTensor], gpu?: false }] }
import { readFileSync } from 'node:fs';
import { pathToFileURL } from 'node:url';
import * as ort from 'onnxruntime-node';
import type { PageTensor } from './web.js';

interface Job {
  index: string;
  runs: Record<string, PageTensor>[];
  /** false: no options.gpu (the error a Node user gets without it) */
  gpu?: boolean;
}

const ctor: Record<string, new (b: ArrayBuffer) => ArrayBufferView> = { float32: Float32Array, int64: BigInt64Array, int32: Int32Array, uint8: Uint8Array, bool: Uint8Array };

async function main(): Promise<void> {
  const req = JSON.parse(readFileSync(process.argv[2], 'utf8')) as { jobs: Job[] };
  const webgpu = await import('webgpu');
  const gpu = webgpu.create([]);
  const results: unknown[] = [];
  for (const job of req.jobs) {
    const runs: unknown[] = [];
    try {
      const m = await import(pathToFileURL(job.index).href);
      const session = await m.createSession({ ort, ...(job.gpu === false ? {} : { gpu }) });
      for (const feeds of job.runs) {
        const f: Record<string, ort.Tensor> = {};
        for (const [k, t] of Object.entries(feeds)) {
          const b = Buffer.from(t.b64, 'base64');
          f[k] = new ort.Tensor(t.type as 'float32', new ctor[t.type](b.buffer.slice(b.byteOffset, b.byteOffset + b.byteLength)) as Float32Array, t.dims);
        }
        try {
          const out = (await session.run(f)) as Record<string, ort.Tensor>;
          const o: Record<string, PageTensor> = {};
          for (const [k, t] of Object.entries(out)) {
            const d = t.data as Float32Array;
            o[k] = { type: t.type, dims: [...t.dims], b64: Buffer.from(d.buffer, d.byteOffset, d.byteLength).toString('base64') };
          }
          runs.push({ outputs: o });
        } catch (e) {
          runs.push({ error: (e as Error).message });
        }
      }
      await session.release();
      results.push({ results: runs });
    } catch (e) {
      results.push({ error: (e as Error).message });
    }
  }
  process.stdout.write(JSON.stringify(results) + '\n');
  process.exit(0); // Dawn's threads would keep the process alive
}

main().catch((e) => {
  process.stderr.write(`${(e as Error).stack ?? e}\n`);
  process.exit(1);
});
