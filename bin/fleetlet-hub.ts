#!/usr/bin/env node
// `fleetlet hub` as its own entry point (dist/hub.mjs). Arguments as after `fleetlet hub`.
import { Command } from '@commander-js/extra-typings';
import { configureTree, exitQuietlyOnClosedPipe, ExitCode, processIo, runCommand } from '../src/cli/cli-support.ts';
import { hubCommand } from '../src/cli/hub-command.ts';

exitQuietlyOnClosedPipe();
const io = processIo();
let code: number = ExitCode.Ok;
// Under a `fleetlet` root, so usage and errors read as they do for `fleetlet hub`.
const program = new Command('fleetlet').addCommand(hubCommand({ io, exit: (c) => (code = c) }));
configureTree(program, io);
process.exitCode = await runCommand(program, ['hub', ...process.argv.slice(2)], io, () => code);
