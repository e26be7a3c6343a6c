// Runs the ava suite and ends with the line CI reads: "N passed, M failed[, K skipped]".
// Usage: node scripts/run-tests.mjs [ava args...]   (the build must have run first)
import { spawn } from 'node:child_process';

const child = spawn(process.execPath, ['node_modules/ava/entrypoints/cli.mjs', '--tap', ...process.argv.slice(2)], { stdio: ['ignore', 'pipe', 'inherit'] });
let passed = 0, failed = 0, skipped = 0, buffer = '';
child.stdout.on('data', (chunk) => {
  process.stdout.write(chunk);
  buffer += chunk;
  let nl;
  while ((nl = buffer.indexOf('\n')) >= 0) {
    const line = buffer.slice(0, nl);
    buffer = buffer.slice(nl + 1);
    if (/^ok \d+/.test(line)) (/# SKIP/.test(line) ? skipped++ : passed++);
    else if (/^not ok \d+/.test(line)) (/# TODO/.test(line) ? skipped++ : failed++);
  }
});
child.on('close', (code) => {
  if (code !== 0 && failed === 0) failed = 1; // the runner itself failed (a crash, a timeout, no tests)
  process.stdout.write(`\n${passed} passed, ${failed} failed${skipped ? `, ${skipped} skipped` : ''}\n`);
  process.exit(code === 0 && failed === 0 ? 0 : 1);
});
