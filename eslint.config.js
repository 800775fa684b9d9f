import js from '@eslint/js';
import tseslint from 'typescript-eslint';
import prettier from 'eslint-config-prettier';

export default tseslint.config(
  { ignores: ['dist/', 'build/', 'node_modules/', 'src/protocol/generated/'] },
  js.configs.recommended,
  ...tseslint.configs.strict,
  prettier,
  {
    languageOptions: {
      globals: { process: 'readonly', console: 'readonly', URL: 'readonly', Buffer: 'readonly' },
    },
    rules: {
      '@typescript-eslint/consistent-type-imports': 'error',
      '@typescript-eslint/no-unused-vars': ['error', { argsIgnorePattern: '^_' }],
    },
  },
  {
    // Tests index into arrays they just built; `!` there says so without ceremony.
    files: ['test/**/*.ts', 'bench/**/*.ts'],
    rules: { '@typescript-eslint/no-non-null-assertion': 'off' },
  },
  {
    files: ['src/**/*.ts'],
    rules: { 'no-console': ['error', { allow: ['error'] }] },
  },
  {
    // AssemblyScript (compiled by asc, not tsc): it has no `import type`, and the guest SDK keeps
    // constants in namespaces and static-only classes.
    files: ['wasm/**/*.ts', 'filters/**/*.ts'],
    rules: {
      '@typescript-eslint/consistent-type-imports': 'off',
      '@typescript-eslint/no-namespace': 'off',
      '@typescript-eslint/no-extraneous-class': 'off',
    },
  },
  {
    // The SDK runs in browsers: it and what it imports may use no Node built-in, and no Buffer.
    files: ['src/client/**/*.ts', 'src/protocol/**/*.ts', 'src/events/**/*.ts'],
    rules: {
      'no-restricted-imports': [
        'error',
        {
          patterns: [
            {
              group: [
                'node:*',
                'fs',
                'path',
                'os',
                'crypto',
                'net',
                'http',
                'https',
                'child_process',
                'worker_threads',
                'lz4-napi',
                'uWebSockets.js',
              ],
              message: 'browser code: no Node built-ins or native modules',
            },
          ],
        },
      ],
      'no-restricted-globals': ['error', { name: 'Buffer', message: 'browser code: use Uint8Array' }],
      'no-restricted-properties': ['error', { object: 'process', message: 'browser code: no process' }],
    },
  },
);
