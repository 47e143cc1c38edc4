// Runs kimberlite-admin in-process for the CLI tests and captures what it prints, so each test
// file does not carry its own copy of the plumbing.

import { PassThrough } from 'node:stream';
import { runAdmin } from './admin.js';

/** Runs `kimberlite-admin args` with no stdin and an empty environment; its exit code and output. */
export async function runAdminCaptured(
  args: string[],
): Promise<{ code: number; stdout: string; stderr: string }> {
  const stdout = new PassThrough();
  const stderr = new PassThrough();
  const out = { stdout: '', stderr: '' };
  stdout.on('data', (data: Buffer) => (out.stdout += data.toString()));
  stderr.on('data', (data: Buffer) => (out.stderr += data.toString()));
  const code = await runAdmin(args, { stdout, stderr, stdin: new PassThrough(), env: {} });
  return { code, ...out };
}
