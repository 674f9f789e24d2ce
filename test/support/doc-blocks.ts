// Code blocks of a page in docs/ marked with an HTML comment right above them
// (`<!-- marker -->`), so tests execute what the page shows.
import { readFileSync } from 'node:fs';

export function readDoc(name: string): string {
  return readFileSync(new URL(`../../docs/${name}`, import.meta.url), 'utf8');
}

/** The bodies of the ```lang blocks right after `<!-- marker -->`, in page order. */
export function docBlocks(doc: string, marker: string, lang: string): string[] {
  const escaped = marker.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
  return [...doc.matchAll(new RegExp(`<!-- ${escaped} -->\\n\`\`\`${lang}\\n([\\s\\S]*?)\`\`\``, 'g'))].map((m) => m[1] ?? '');
}
