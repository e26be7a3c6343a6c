// ONNX Runtime's profiler output (runner --profile): a JSON array of trace events. Each node's kernel run is one
// event of category "Node" named "<node>_kernel_time", with the op type in args.op_name.
import { readFileSync } from 'node:fs';

interface ProfileEvent {
  cat?: string;
  name?: string;
  dur?: number;
  args?: { op_name?: string };
}

/** Microseconds per run by op type, from an ONNX Runtime profile file covering `runs` runs (the warm-up included). */
export function profileByOpType(file: string, runs: number): Map<string, number> {
  const events = JSON.parse(readFileSync(file, 'utf8')) as ProfileEvent[];
  const out = new Map<string, number>();
  for (const e of events) {
    if (e.cat !== 'Node' || !e.name?.endsWith('_kernel_time') || !e.args?.op_name) continue;
    out.set(e.args.op_name, (out.get(e.args.op_name) ?? 0) + (e.dur ?? 0) / runs);
  }
  return out;
}
