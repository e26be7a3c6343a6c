// `npm run bench`: every benchmark, side by side in one run, as tables of ratios.
//   npm run bench [-- io|ort|rewriter|wgsl|web ...]   (default: all)
import { runOrtBench } from './ort.js';

type Bench = () => Promise<string>;

const BENCHES: Record<string, Bench> = {
  io: async () => {
    const { runIoBench, formatIoBench } = await import('./io.js');
    return formatIoBench(await runIoBench());
  },
  ort: () => runOrtBench(),
  rewriter: async () => {
    const { runRewriterBench } = await import('./rewriter.js');
    return runRewriterBench();
  },
  wgsl: async () => {
    const { runWgslBench } = await import('./wgsl.js');
    return runWgslBench();
  },
  web: async () => {
    const { runWebBench } = await import('./wgsl-web.js');
    return runWebBench();
  },
};

async function main(): Promise<void> {
  const wanted = process.argv.slice(2).filter((a) => a in BENCHES);
  const names = wanted.length ? wanted : Object.keys(BENCHES);
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
