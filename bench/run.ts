// `npm run bench`: the benchmarks, side by side in one run, as tables of ratios.
//   npm run bench [-- io|ort|nets|ort-profile|ort-cpu|rewriter|wgsl|web|web-nets|web-layout ...]
// With no names: every benchmark but the profiles (ort-profile) and web-layout (an experiment's record). nets, ort-profile and web-nets need the real-size
// networks made once by fixtures/export_nets.py; DYNCONV_BENCH_NETS=TEXT keeps the network rows whose name contains
// TEXT.

type Bench = () => Promise<string>;

const BENCHES: Record<string, Bench> = {
  io: async () => { const m = await import('./io.js'); return m.formatIoBench(await m.runIoBench()); },
  ort: async () => (await import('./ort.js')).runOrtBench(),
  nets: async () => (await import('./nets.js')).runNetsBench(),
  'ort-profile': async () => (await import('./ort-profile.js')).runOrtProfileBench(),
  'ort-cpu': async () => (await import('./ort-cpu.js')).runOrtCpuBench({ only: process.env.DYNCONV_BENCH_NETS }),
  rewriter: async () => (await import('./rewriter.js')).runRewriterBench(),
  wgsl: async () => (await import('./wgsl.js')).runWgslBench(),
  web: async () => (await import('./wgsl-web.js')).runWebBench(),
  'web-nets': async () => (await import('./web-nets.js')).runWebNetsBench(),
  'web-layout': async () => (await import('./web-layout.js')).runWebLayoutBench(),
};

/** Not in the default run: long, and what they explain is in the tables of the others. */
const ON_REQUEST = new Set(['ort-profile', 'ort-cpu', 'web-layout']);

async function main(): Promise<void> {
  const wanted = process.argv.slice(2).filter((a) => a in BENCHES);
  const unknown = process.argv.slice(2).filter((a) => !(a in BENCHES) && !a.startsWith('-'));
  if (unknown.length) {
    console.error(`unknown benchmark ${unknown.join(', ')}; the benchmarks: ${Object.keys(BENCHES).join(', ')}`);
    process.exitCode = 2;
    return;
  }
  const names = wanted.length ? wanted : Object.keys(BENCHES).filter((n) => !ON_REQUEST.has(n));
  let failed = false;
  for (const name of names) {
    try {
      console.log(await BENCHES[name]());
    } catch (e) {
      failed = true;
      console.log(`\n${name}: the benchmark could not run: ${(e as Error).message}`);
    }
  }
  process.exitCode = failed ? 1 : 0;
}

main();
