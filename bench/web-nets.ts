// The real-size networks (bench/models.ts REAL_NETS: EfficientNet-B0 CondConv, RedNet-26, ODConv MobileNetV2 at
// 224x224) end to end on WebGPU in Chromium: the dynconv web session against onnxruntime-web's WebGPU EP on the
// unfused export and on the floor, measured as bench/wgsl-web.ts measures layers. `npm run bench -- web-nets`.
import path from 'node:path';
import { REAL_NETS, requireRealNets } from './models.js';
import { formatTable, type Cell } from './table.js';
import { measureWebRow, profileParts, withWebPage, type WebResult } from './wgsl-web.js';

export async function runWebNetsBench(repeat = 1, rounds = 2): Promise<string> {
  const only = process.env.DYNCONV_BENCH_NETS;
  const nets = REAL_NETS.filter((n) => (!only || n.name.includes(only)) && n.batch === 1);
  requireRealNets(nets);
  const results: WebResult[] = await withWebPage(async (page, bench, tmp) => {
    const out: WebResult[] = [];
    for (const [i, net] of nets.entries()) {
      const t0 = performance.now();
      out.push(await measureWebRow(page, bench, net, path.join(tmp, `n${i}`), { repeat, rounds }));
      console.error(`web-nets: ${net.name} measured in ${((performance.now() - t0) / 1000).toFixed(0)} s`);
    }
    return out;
  });
  const rows: Cell[][] = results.map((r) => [r.row.name, r.dynconv, r.unfused, r.floor, r.unfused / r.dynconv, r.dynconv / r.floor, r.relL2.toExponential(1), r.row.goals.web ?? '-', profileParts(r.profile)]);
  return formatTable(
    `Networks on WebGPU end to end in Chromium (SwiftShader; upload + run + read back; median of ${rounds} interleaved rounds of a median of ${repeat}, after a warm-up round; ms)`,
    ['network x batch', 'dynconv ms', 'unfused ms', 'floor ms', 'speed-up vs unfused', 'dynconv / floor', 'rel L2 vs ORT CPU', 'goal', 'dynconv time (profiled run)'],
    rows,
  );
}

if (process.argv[1] && import.meta.url.endsWith(path.basename(process.argv[1]))) {
  runWebNetsBench().then((t) => console.log(t));
}
