// Writes the op reference tables of docs/ops.md from the op definitions (ops/). Run after `npm run build`.
import { readFileSync, writeFileSync } from 'node:fs';
import { withReference } from '../dist/ops/reference.js';

const path = new URL('../docs/ops.md', import.meta.url);
writeFileSync(path, withReference(readFileSync(path, 'utf8')));
