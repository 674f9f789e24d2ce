#!/usr/bin/env node
// The image's entry point (dist/image.mjs): `fleetlet <command> ...` with the
// smallest bundle that runs the command. `agent` loads dist/agent.mjs alone and
// `hub` dist/hub.mjs alone, so neither carries the other's modules in memory
// (docs/footprint.md); any other command runs the whole CLI.
// No imports of its own: it stays a few hundred bytes.
const own: Record<string, string> = { agent: './agent.mjs', hub: './hub.mjs' };
const command = process.argv[2];
const bundle = command !== undefined ? own[command] : undefined;
// The command's own bundle reads its arguments as after `fleetlet <command>`.
if (bundle) process.argv.splice(2, 1);
await import(new URL(bundle ?? './fleetlet.mjs', import.meta.url).href);
