// ONNX Runtime's profiler output: trace events (a JSON array; runner --profile writes it to a file,
// onnxruntime-web prints it on the console when a session's profiling ends). Two kinds of events are read here:
// - category "Node", named "<node>_kernel_time", op type in args.op_name: the host time of each node's kernel
//   (on the CPU EP, the kernel's time);
// - category "Api", named "<node>&<op type>&<program>": the WebGPU EP's GPU time of each program it dispatched
//   (from timestamp queries), in µs like the others.
import { readFileSync } from 'node:fs';

export interface ProfileEvent {
  cat?: string;
  name?: string;
  dur?: number;
  args?: { op_name?: string };
}

export function readProfile(file: string): ProfileEvent[] {
  return JSON.parse(readFileSync(file, 'utf8')) as ProfileEvent[];
}

function sumBy(events: ProfileEvent[], runs: number, key: (e: ProfileEvent) => string | undefined): Map<string, number> {
  const out = new Map<string, number>();
  for (const e of events) {
    const k = key(e);
    if (k !== undefined) out.set(k, (out.get(k) ?? 0) + (e.dur ?? 0) / runs);
  }
  return out;
}

/**
 * Kernel microseconds per run by op type ("Node" events), over `runs` runs (the warm-up included), or with
 * `skipWarmup` over the `runs` runs after it: each node's first event is dropped (a kernel's one-time work on
 * its first call, such as packing constant weights, is then not in the per-run time).
 */
export function kernelTimeByOpType(events: ProfileEvent[], runs: number, skipWarmup = false): Map<string, number> {
  const seen = new Set<string>();
  return sumBy(events, runs, (e) => {
    if (e.cat !== 'Node' || !e.name?.endsWith('_kernel_time')) return undefined;
    if (skipWarmup && !seen.has(e.name)) {
      seen.add(e.name);
      return undefined;
    }
    return e.args?.op_name;
  });
}

/** GPU microseconds per run by op type (the WebGPU EP's "Api" events), over `runs` runs. */
export function gpuTimeByOpType(events: ProfileEvent[], runs: number): Map<string, number> {
  return sumBy(events, runs, (e) => {
    const parts = e.cat === 'Api' ? e.name?.split('&') : undefined;
    return parts && parts.length >= 3 ? parts[parts.length - 2] : undefined;
  });
}

/** Kernel microseconds per run by op type, from a profile file of the native runner (see kernelTimeByOpType). */
export function profileByOpType(file: string, runs: number, skipWarmup = false): Map<string, number> {
  return kernelTimeByOpType(readProfile(file), runs, skipWarmup);
}
