// Child process of the WGSL benchmark: times a model on onnxruntime-node's WebGPU execution provider.
// It runs in its own process because the Vulkan driver (SwiftShader) is found through the environment
// (VK_ICD_FILENAMES, LD_LIBRARY_PATH) that only a new process picks up.
// argv: MODEL INPUT_DIMS_JSON REPEAT   -> prints {"medianMs": n}
import * as ort from 'onnxruntime-node';
import { median } from './timing.js';

async function main(): Promise<void> {
  const [model, dimsJson, repeatArg] = process.argv.slice(2);
  const dims = JSON.parse(dimsJson) as Record<string, number[]>;
  ort.env.logLevel = 'fatal';
  const session = await ort.InferenceSession.create(model, { executionProviders: ['webgpu'] as never, logSeverityLevel: 4 });
  const feeds: Record<string, ort.Tensor> = {};
  for (const [name, d] of Object.entries(dims)) feeds[name] = new ort.Tensor('float32', Float32Array.from({ length: d.reduce((a, b) => a * b, 1) }, (_, i) => Math.sin(i)), d);
  await session.run(feeds); // warm-up: shader compilation and uploads of the weights
  const times: number[] = [];
  for (let i = 0; i < Number(repeatArg); i++) {
    const t0 = performance.now();
    await session.run(feeds);
    times.push(performance.now() - t0);
  }
  process.stdout.write(JSON.stringify({ medianMs: median(times) }) + '\n');
  await session.release();
}

main().catch((e) => {
  process.stderr.write(String(e?.message ?? e) + '\n');
  process.exit(1);
});
