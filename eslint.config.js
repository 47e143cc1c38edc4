// Lint configuration. The second block is the determinism rule of DESIGN.md §2: the pure core
// (src/kernel, src/vsr) may not reach for time, randomness, timers, the process or any I/O.
// Time arrives as ticks and Prepare timestamps; I/O leaves as returned effects.
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
