#!/usr/bin/env node
import { exitQuietlyOnClosedPipe } from '../src/cli/cli-support.ts';
import { main } from '../src/cli/main.ts';

exitQuietlyOnClosedPipe();
try {
  process.exitCode = await main(process.argv.slice(2));
} catch (err) {
  // An error no command turned into a message of its own: say it in one line, not a stack.
  process.stderr.write(`fleetlet: ${(err as Error).message ?? String(err)}\n`);
  if (process.env.FLEETLET_DEBUG) process.stderr.write(`${(err as Error).stack ?? ''}\n`);
  process.exitCode = 1;
}
