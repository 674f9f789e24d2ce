// Lint is part of `npm test`. The rules that matter here: no floating
// promises (a forgotten await loses a journal write), and the one-way
// dependency rule between folders (the agent never imports the hub).
import js from '@eslint/js';
import tseslint from 'typescript-eslint';

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
  {
    files: ['src/agent/**', 'src/hub-link/**', 'src/store/**', 'src/protocol/**', 'src/lib/**'],
    rules: {
      'no-restricted-imports': ['error', { patterns: [{ group: ['**/hub/**', '../hub', '../../hub'], message: 'The agent side never imports the hub (docs/architecture.md, layering).' }] }],
    },
  },
  {
    files: ['src/agent/**'],
    rules: {
      'no-restricted-imports': [
        'error',
        {
          patterns: [
            { group: ['**/hub/**', '../hub', '../../hub', '../../../hub'], message: 'The agent side never imports the hub (docs/architecture.md, layering).' },
            { group: ['**/hub-link/**'], message: 'The agent talks to the hub link only through what the composition root (src/cli) wires in.' },
          ],
        },
      ],
    },
  },
  {
    files: ['src/lib/**'],
    rules: {
      'no-restricted-imports': ['error', { patterns: [{ group: ['**/protocol/**', '**/store/**', '**/agent/**', '**/hub-link/**', '**/hub/**', '**/cli/**'], message: 'src/lib holds helpers both sides share; it depends on nothing else in fleetlet.' }] }],
    },
  },
  {
    files: ['src/protocol/**'],
    rules: {
      'no-restricted-imports': ['error', { patterns: [{ group: ['**/store/**', '**/agent/**', '**/hub-link/**', '**/hub/**'], message: 'protocol depends on nothing else in fleetlet.' }] }],
    },
  },
  {
    files: ['src/store/**'],
    rules: {
      'no-restricted-imports': ['error', { patterns: [{ group: ['**/agent/**', '**/hub-link/**', '**/hub/**'], message: 'store depends only on protocol.' }] }],
    },
  },
);
