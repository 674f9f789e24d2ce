// The single `fleetlet` binary: one subcommand per job, parsed by commander
// so every command has generated help and a clear error for a wrong flag.
// Exit codes: cli-support.ts (ExitCode) and docs/cli.md.
import { Command } from '@commander-js/extra-typings';
import { agentCommand } from './agent-command.ts';
import { configureTree, ExitCode, exitCodeHelp, processIo, runCommand, type CliIo, type CommandContext } from './cli-support.ts';
import { completionCommand } from './completion-command.ts';
import { demoCommand } from './demo-command.ts';
import { hubCommand } from './hub-command.ts';
import { keygenCommand, signCommand } from './keys-command.ts';
import { rbacCommand } from './rbac-command.ts';
import { rolloutCommand } from './rollout-command.ts';
import { tokenCommand } from './token-command.ts';
import { statusCommand } from './status-command.ts';

export interface ProgramOptions {
  io?: CliIo;
  /** Wrap help at this width (docs/cli.md is generated at a fixed one); default: the terminal's. */
  helpWidth?: number;
}

/** The whole command tree; `exit` receives the code of the command that ran. */
export function buildProgram(exit: (code: number) => void, o: ProgramOptions = {}): Command {
  const io = o.io ?? processIo();
  const ctx: CommandContext = { io, exit };
  const program = new Command('fleetlet')
    .description('Upgrade the add-ons of Kubernetes clusters, and the agent itself, in verified stages with automatic rollback; and run the hub that drives fleet rollouts.')
    .addHelpText('after', `\n${exitCodeHelp}\n\nRun "fleetlet <command> --help" for a command's options; docs/cli.md has them all.`);
  program.addCommand(agentCommand(ctx));
  program.addCommand(statusCommand(ctx));
  program.addCommand(hubCommand(ctx));
  program.addCommand(rolloutCommand(ctx));
  program.addCommand(tokenCommand(ctx));
  program.addCommand(demoCommand(ctx));
  program.addCommand(keygenCommand(ctx));
  program.addCommand(signCommand(ctx));
  program.addCommand(rbacCommand(ctx));
  program.addCommand(completionCommand(ctx, () => program));
  configureTree(program, io, o.helpWidth);
  return program;
}

/** Parses and runs; resolves to the exit code. */
export async function main(argv: string[], io: CliIo = processIo()): Promise<number> {
  let code: number = ExitCode.Ok;
  return runCommand(buildProgram((c) => (code = c), { io }), argv, io, () => code);
}
