// Progress on stderr for long work: one line rewritten in place, shown only when stderr is a terminal (a
// log file or a CI job gets nothing).

export interface Progress {
  /** What the command is doing now: "fuse: saving out.onnx". */
  stage(text: string): void;
  /** How far through a list it is: "check: 3/40 models/foo.onnx". */
  count(done: number, total: number, item: string): void;
  /** Removes the line (before the command prints its result). */
  clear(): void;
}

const QUIET: Progress = { stage() {}, count() {}, clear() {} };

export function terminalProgress(command: string, stream: NodeJS.WriteStream = process.stderr): Progress {
  if (!stream.isTTY) return QUIET;
  let shown = false;
  const show = (text: string) => {
    // Model-given names may hold control characters; they must not move the cursor or clear the screen.
    // eslint-disable-next-line no-control-regex
    const line = `${command}: ${text}`.replace(/[\x00-\x1f\x7f]/g, '?').slice(0, (stream.columns || 80) - 1);
    stream.write(`\r\x1b[K${line}`);
    shown = true;
  };
  return {
    stage: show,
    count: (done, total, item) => show(`${done}/${total} ${item}`),
    clear() {
      if (shown) stream.write('\r\x1b[K');
      shown = false;
    },
  };
}
