// Bundles compiled ES modules of this package (an entry and the modules it imports relatively) into one module
// to copy next to generated code: the generated runtime is made from the real modules (and the op definitions
// of ops/) instead of being retyped. Each module becomes a function scope; its imports read the objects of the
// modules before it; the entry's exports are the bundle's. Only the forms tsc emits for this code are handled
// (named imports and exports, `export * from`, `export function/class/const/let`); anything else is refused.
import { readFileSync } from 'node:fs';

interface Mod {
  url: string;
  id: string;
  body: string;
  exports: string[];
  reexports: string[];
}

const IMPORT = /^import\s*(?:\{([^}]*)\}|\*\s+as\s+([\w$]+))\s*from\s*'([^']+)';?\s*$/gm;
const EXPORT_FROM = /^export\s*(?:\{([^}]*)\}|\*)\s*from\s*'([^']+)';?\s*$/gm;
const EXPORT_LIST = /^export\s*\{([^}]*)\};?\s*$/gm;
const EXPORT_DECL = /^export\s+(?:(async\s+)?function\*?\s+([\w$]+)|class\s+([\w$]+)|(?:const|let|var)\s+([\w$]+))/gm;

function specifiers(list: string): [string, string][] {
  return list.split(',').map((s) => s.trim()).filter(Boolean).map((s) => {
    const m = /^([\w$]+)(?:\s+as\s+([\w$]+))?$/.exec(s);
    if (!m) throw new Error(`bundle: cannot read the specifier ${JSON.stringify(s)}`);
    return [m[1], m[2] ?? m[1]];
  });
}

export function bundleModules(entry: URL, banner = ''): string {
  const mods = new Map<string, Mod>();
  const order: Mod[] = [];
  const visiting = new Set<string>();
  const load = (url: URL): Mod => {
    const key = url.href;
    const done = mods.get(key);
    if (done) return done;
    if (visiting.has(key)) throw new Error(`bundle: import cycle through ${key}`);
    visiting.add(key);
    let body = readFileSync(url, 'utf8').replace(/\n\/\/# sourceMappingURL=.*\s*$/, '\n');
    const dep = (spec: string): Mod => {
      if (!spec.startsWith('.')) throw new Error(`bundle: ${key} imports ${spec}; only relative imports can be bundled`);
      return load(new URL(spec, url));
    };
    const reexports: string[] = [];
    body = body.replace(IMPORT, (_, names: string | undefined, ns: string | undefined, spec: string) => {
      const d = dep(spec);
      return ns ? `const ${ns} = ${d.id};` : `const { ${specifiers(names!).map(([a, b]) => (a === b ? a : `${a}: ${b}`)).join(', ')} } = ${d.id};`;
    });
    body = body.replace(EXPORT_FROM, (_, names: string | undefined, spec: string) => {
      const d = dep(spec);
      if (names === undefined) reexports.push(`...${d.id}`);
      else for (const [a, b] of specifiers(names)) reexports.push(`${b}: ${d.id}.${a}`);
      return '';
    });
    const exports: string[] = [];
    body = body.replace(EXPORT_LIST, (_, names: string) => {
      for (const [a, b] of specifiers(names)) exports.push(a === b ? a : `${b}: ${a}`);
      return '';
    });
    body = body.replace(EXPORT_DECL, (m: string, _async: string | undefined, fn?: string, cls?: string, v?: string) => {
      exports.push((fn ?? cls ?? v)!);
      return m.replace(/^export\s+/, '');
    });
    if (/^\s*(import|export)\b/m.test(body)) throw new Error(`bundle: ${key} has an import or export form the bundler does not handle`);
    // ids follow the order modules finish loading, so every module comes after those it reads
    const mod: Mod = { url: key, id: `__module${order.length}`, body, exports, reexports };
    visiting.delete(key);
    order.push(mod);
    mods.set(key, mod);
    return mod;
  };
  const root = load(entry);
  const parts = [banner];
  for (const m of order) {
    parts.push(`// ---- ${m.url.replace(/^.*\/dist\//, '')}`);
    parts.push(`const ${m.id} = (() => {\n${m.body.trim()}\nreturn { ${[...m.reexports, ...m.exports].join(', ')} };\n})();`);
  }
  const names = Object.keys(evaluateShape(root, order));
  parts.push(`export const { ${names.join(', ')} } = ${root.id};`, '');
  return parts.join('\n');
}

/** The names the entry exports, following `export *` chains. */
function evaluateShape(root: Mod, order: Mod[]): Record<string, true> {
  const byId = new Map(order.map((m) => [m.id, m]));
  const names = (m: Mod): string[] =>
    [
      ...m.exports.map((e) => e.split(':')[0].trim()),
      ...m.reexports.flatMap((r) => (r.startsWith('...') ? names(byId.get(r.slice(3))!) : [r.split(':')[0].trim()])),
    ];
  return Object.fromEntries(names(root).map((n) => [n, true]));
}
