#!/usr/bin/env node
// `fleetlet agent` as its own entry point: the agent's bundle (dist/agent.mjs)
// holds only what the agent imports, nothing of the hub, CLI tools or demo.
import { agentCommand } from '../src/cli/agent-command.ts';

process.exitCode = await agentCommand(process.argv.slice(2));
