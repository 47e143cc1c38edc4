// Lint configuration. The second block is the determinism rule of DESIGN.md §2: the pure core
// (src/kernel, src/vsr) may not reach for time, randomness, timers, the process or any I/O.
// Time arrives as ticks and Prepare timestamps; I/O leaves as returned effects. The blocks before
// it keep node:crypto to its two files.
import js from '@eslint/js';
import tseslint from 'typescript-eslint';

const bannedModules = [
  'fs', 'fs/promises', 'net', 'http', 'https', 'os', 'child_process', 'dgram', 'dns',
  'worker_threads', 'cluster', 'perf_hooks', 'timers', 'timers/promises', 'process', 'crypto',
  'readline', 'tls', 'stream', 'zlib',
];

export default tseslint.config(
  { ignores: ['dist/**', 'node_modules/**', 'bin/**', 'eslint.config.js'] },
  js.configs.recommended,
  ...tseslint.configs.recommended,
  {
    rules: {
      '@typescript-eslint/no-unused-vars': ['error', { argsIgnorePattern: '^_', varsIgnorePattern: '^_' }],
      'no-constant-condition': ['error', { checkLoops: false }],
      eqeqeq: ['error', 'always'],
    },
  },
  // Outside src/kernel the kernel is reached only through its facade, kernel/kernel.ts, so its
  // domain files can be split or moved without touching their users.
  {
    files: ['src/**/*.ts', 'test/**/*.ts', 'bench/**/*.ts'],
    ignores: ['src/kernel/**'],
    rules: {
      'no-restricted-syntax': [
        'error',
        {
          selector: 'ImportDeclaration[source.value=/kernel\\/(?!kernel\\.js$)[^/]+$/]',
          message: 'Import the kernel through kernel/kernel.js, its facade.',
        },
        {
          selector: 'ExportNamedDeclaration[source.value=/kernel\\/(?!kernel\\.js$)[^/]+$/]',
          message: 'Re-export the kernel from kernel/kernel.js, its facade.',
        },
      ],
    },
  },
  // node:crypto has two homes: core/checksum.ts hashes (and draws no randomness: the pure core
  // imports core/), client/client_id.ts makes random client ids. The kernel/vsr block below bans
  // it there again with the rest of the I/O modules (a later block replaces this rule's options).
  {
    files: ['src/**/*.ts'],
    ignores: ['**/*.test.ts', 'src/core/checksum.ts', 'src/client/client_id.ts'],
    rules: {
      'no-restricted-imports': [
        'error',
        ...['crypto', 'node:crypto'].map((name) => ({
          name,
          message: 'node:crypto lives in core/checksum.ts (hashes) and client/client_id.ts (ids).',
        })),
      ],
    },
  },
  {
    files: ['src/core/checksum.ts'],
    rules: {
      'no-restricted-imports': [
        'error',
        {
          name: 'node:crypto',
          importNames: ['randomBytes', 'randomFill', 'randomFillSync', 'randomInt', 'randomUUID',
            'getRandomValues', 'webcrypto'],
          message: 'core/ hashes but draws no randomness: random ids come from client/client_id.ts.',
        },
      ],
    },
  },
  // src/views holds derived state fed by the node: it sees the kernel (through its facade) and
  // core, never the replica, the shell, the wire or the disk layer (DESIGN.md §2). This block
  // replaces the node:crypto rule's options for these files, so it repeats that rule.
  {
    files: ['src/views/**/*.ts'],
    ignores: ['**/*.test.ts'],
    rules: {
      'no-restricted-imports': [
        'error',
        {
          paths: ['crypto', 'node:crypto'].map((name) => ({
            name,
            message: 'node:crypto lives in core/checksum.ts (hashes) and client/client_id.ts (ids).',
          })),
          patterns: [
            { group: ['**/vsr/**', '**/node/**', '**/storage/**', '**/net/**', '**/observability/**',
                      '**/client/**', '**/cli/**', '**/testing/**'],
              message: 'views/ imports only core/ and kernel/kernel.js.' },
          ],
        },
      ],
    },
  },
  {
    files: ['src/kernel/**/*.ts', 'src/vsr/**/*.ts'],
    ignores: ['**/*.test.ts'],
    rules: {
      'no-restricted-imports': [
        'error',
        {
          paths: bannedModules.flatMap((m) => [
            { name: m, message: 'kernel/ and vsr/ are pure: I/O leaves as effects.' },
            { name: `node:${m}`, message: 'kernel/ and vsr/ are pure: I/O leaves as effects.' },
          ]),
          patterns: [
            { group: ['**/storage/**', '**/net/**', '**/node/**', '**/observability/**',
                      '**/client/**', '**/cli/**', '**/testing/**'],
              message: 'kernel/ and vsr/ import only core/ (and each other).' },
          ],
        },
      ],
      'no-restricted-globals': [
        'error',
        ...['Date', 'setTimeout', 'setInterval', 'setImmediate', 'clearTimeout', 'clearInterval',
          'clearImmediate', 'queueMicrotask', 'performance', 'process', 'require', 'fetch',
          'crypto', 'Buffer'].map((name) => ({
          name,
          message: `${name} is ambient: the pure core gets time as ticks and I/O as effects.`,
        })),
      ],
      'no-restricted-properties': [
        'error',
        { object: 'Math', property: 'random', message: 'Use the seeded PRNG passed in.' },
        { object: 'globalThis', message: 'No ambient globals in the pure core.' },
      ],
    },
  },
);
