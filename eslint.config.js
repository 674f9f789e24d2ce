// Lint is part of `npm test`. The rules that matter here: no floating
// promises (a forgotten await loses a journal write), and the one-way
// dependency rule between folders (the agent never imports the hub).
import js from '@eslint/js';
import tseslint from 'typescript-eslint';

// The layer table of docs/architecture.md: what each folder of src/ may
// import of the others. src/cli (the composition roots) may import anything.
const layers = {
  protocol: [],
  lib: [],
  store: ['protocol'],
  'hub-link': ['protocol', 'store', 'lib'],
  agent: ['protocol', 'store', 'lib'],
  hub: ['protocol', 'lib'],
  testbed: ['protocol'],
};
const folders = [...Object.keys(layers), 'cli'];

// no-restricted-imports matches the import's text, not the file it resolves
// to, and src/hub has a store/ of its own: so each depth gets its own rule,
// naming a forbidden folder by as many ../ as it takes to leave src/<layer>.
function layerRules() {
  return Object.entries(layers).flatMap(([layer, allowed]) =>
    [1, 2, 3, 4].map((depth) => {
      const up = '../'.repeat(depth);
      const forbidden = folders.filter((f) => f !== layer && !allowed.includes(f));
      return {
        files: [`src/${layer}/${'*/'.repeat(depth - 1)}*.ts`],
        rules: {
          'no-restricted-imports': [
            'error',
            {
              patterns: forbidden.map((f) => ({
                group: [`${up}${f}`, `${up}${f}/**`],
                message:
                  layer === 'agent' && f === 'hub-link'
                    ? 'The agent talks to the hub link only through what the composition root (src/cli) wires in.'
                    : `src/${layer} may import ${allowed.length === 0 ? 'nothing else of fleetlet' : `only ${allowed.map((a) => `src/${a}`).join(', ')}`} (docs/architecture.md, Layers).`,
              })),
            },
          ],
        },
      };
    }),
  );
}

export default tseslint.config(
  { ignores: ['node_modules/**', 'dist/**', '.cache/**'] },
  js.configs.recommended,
  ...tseslint.configs.recommended,
  {
    languageOptions: { parserOptions: { projectService: { allowDefaultProject: ['eslint.config.js'] }, tsconfigRootDir: import.meta.dirname } },
    rules: {
      // node:test's describe/test/it return promises the runner awaits itself.
      '@typescript-eslint/no-floating-promises': [
        'error',
        { allowForKnownSafeCalls: [{ from: 'package', package: 'node:test', name: ['describe', 'it', 'test', 'before', 'after', 'beforeEach', 'afterEach', 'suite'] }] },
      ],
      '@typescript-eslint/no-unused-vars': ['error', { argsIgnorePattern: '^_', varsIgnorePattern: '^_' }],
      '@typescript-eslint/consistent-type-imports': 'error',
    },
  },
  ...layerRules(),
);
