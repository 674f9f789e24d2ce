// Summarises a V8 heap snapshot (node --heapsnapshot-signal, v8.writeHeapSnapshot):
// bytes by node type (code, strings, closures, arrays, objects…), the largest
// object classes, and the largest scripts' sources. Usage: node bench/heap-summary.ts <file.heapsnapshot>
import { readFileSync } from 'node:fs';

interface Snapshot {
  snapshot: { meta: { node_fields: string[]; node_types: [string[], ...unknown[]] } };
  nodes: number[];
  strings: string[];
}

export function summarizeHeap(path: string, top = 12): string {
  const s = JSON.parse(readFileSync(path, 'utf8')) as Snapshot;
  const fields = s.snapshot.meta.node_fields;
  const types = s.snapshot.meta.node_types[0];
  const [fType, fName, fSize] = ['type', 'name', 'self_size'].map((f) => fields.indexOf(f)) as [number, number, number];
  const byType = new Map<string, number>();
  const byClass = new Map<string, number>();
  const bigStrings: { size: number; text: string }[] = [];
  let total = 0;
  for (let i = 0; i < s.nodes.length; i += fields.length) {
    const type = types[s.nodes[i + fType]!]!;
    const size = s.nodes[i + fSize]!;
    total += size;
    byType.set(type, (byType.get(type) ?? 0) + size);
    if (type === 'string' && size > 64 * 1024) bigStrings.push({ size, text: s.strings[s.nodes[i + fName]!]!.slice(0, 60).replace(/\s+/g, ' ') });
    if (type === 'object' || type === 'closure') {
      const name = `${type === 'closure' ? 'closure ' : ''}${s.strings[s.nodes[i + fName]!]}`;
      byClass.set(name, (byClass.get(name) ?? 0) + size);
    }
  }
  const mib = (b: number) => `${(b / 1048576).toFixed(2)} MiB`;
  const rows = (m: Map<string, number>) => [...m].sort((a, b) => b[1] - a[1]).slice(0, top).map(([k, v]) => `    ${mib(v).padStart(10)}  ${k.slice(0, 80)}`);
  return [`  heap snapshot ${path}: ${mib(total)} in all`, '  by node type:', ...rows(byType), '  largest object classes and closures:', ...rows(byClass), '  strings over 64 KiB (script sources among them):', ...bigStrings.sort((a, b) => b.size - a.size).slice(0, top).map((b) => `    ${mib(b.size).padStart(10)}  ${JSON.stringify(b.text)}`)].join('\n');
}

if (import.meta.main) process.stdout.write(`${summarizeHeap(process.argv[2]!)}\n`);
