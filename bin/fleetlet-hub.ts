#!/usr/bin/env node
// `fleetlet hub` as its own entry point (dist/hub.mjs).
import { hubCommand } from '../src/cli/hub-command.ts';

process.exitCode = await hubCommand(process.argv.slice(2));
