#!/usr/bin/env node
// `fleetlet agent` as its own entry point: the agent's bundle (dist/agent.mjs)
// holds only what the agent imports, nothing of the hub, the other commands
// or the demo. Arguments as after `fleetlet agent`.
import { Command } from '@commander-js/extra-typings';
import { configureTree, exitQuietlyOnClosedPipe, ExitCode, processIo, runCommand } from '../src/cli/cli-support.ts';
import { agentCommand } from '../src/cli/agent-command.ts';

exitQuietlyOnClosedPipe();
const io = processIo();
let code: number = ExitCode.Ok;
// Under a `fleetlet` root, so usage and errors read as they do for `fleetlet agent`.
const program = new Command('fleetlet').addCommand(agentCommand({ io, exit: (c) => (code = c) }));
configureTree(program, io);
process.exitCode = await runCommand(program, ['agent', ...process.argv.slice(2)], io, () => code);
