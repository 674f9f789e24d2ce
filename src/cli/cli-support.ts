// What every `fleetlet` command shares: the exit codes (docs/cli.md), option
// value parsers that fail as usage errors, and stdout that survives a reader
// that goes away (`fleetlet status | head`).
import { CommanderError, InvalidArgumentError, type Command } from '@commander-js/extra-typings';
import { parseDuration } from '../protocol/policy.ts';

/**
 * Exit codes. Each means one thing, for every command:
 * - Ok: the command finished as asked (a watched rollout Succeeded, an agent's
 *   desired release is installed, a read printed what was asked).
 * - Failed: it could not do what was asked: the hub was unreachable or said
 *   no, a file was missing or invalid, an internal error.
 * - Usage: the command line itself is wrong (unknown flag, missing argument,
 *   a value that does not parse). Nothing was done.
 * - Stopped: the thing asked about stands short of success: a rollout that is
 *   Paused, Completed with failures, Failed or Cancelled; an agent attempt that
 *   rolled back or failed; a release the agent refused.
 */
export const ExitCode = { Ok: 0, Failed: 1, Usage: 2, Stopped: 3 } as const;
export type ExitCode = (typeof ExitCode)[keyof typeof ExitCode];

export const exitCodeHelp = `Exit codes:
  0  finished as asked
  1  could not do it (hub unreachable or refused, bad file, internal error)
  2  usage error: unknown flag, missing argument, bad value; nothing was done
  3  stopped short of success: rollout Paused, Completed with failures or Cancelled;
     agent attempt rolled back or failed; release refused`;

/** A command line that is wrong in a way the parser cannot see (a flag needed only in some case). */
export class UsageError extends Error {
  override readonly name = 'UsageError';
}

/** The outputs a command writes to, injectable so tests read what a user sees. */
export interface CliIo {
  out: (s: string) => void;
  err: (s: string) => void;
  env: Record<string, string | undefined>;
}

export const processIo = (): CliIo => ({
  out: (s) => process.stdout.write(s),
  err: (s) => process.stderr.write(s),
  env: process.env,
});

/** `--poll-ms 500`: a whole number, at least `min`. */
export const wholeNumber =
  (min = 0) =>
  (text: string): number => {
    if (!/^\d+$/.test(text) || Number(text) < min) throw new InvalidArgumentError(`must be a whole number of at least ${min}`);
    return Number(text);
  };

/** `--ttl 168h`: a duration in milliseconds. */
export function durationArg(text: string): number {
  const ms = parseDuration(text);
  if (ms === undefined || ms <= 0) throw new InvalidArgumentError('must be a duration like 90m, 24h or 1h30m');
  return ms;
}

/**
 * A reader that closes the pipe early (`| head`, `| grep -q`) is not an error:
 * stop writing and exit with what the command would have returned. Without
 * this, node raises EPIPE as an unhandled 'error' event with a stack trace.
 */
export function exitQuietlyOnClosedPipe(stream: NodeJS.WriteStream = process.stdout, exit: (code: number) => void = (c) => process.exit(c)): void {
  stream.on('error', (err: NodeJS.ErrnoException) => {
    if (err.code === 'EPIPE') exit(Number(process.exitCode ?? 0));
    else throw err;
  });
}

/** What a command's action needs from the program around it. */
export interface CommandContext {
  io: CliIo;
  /** Records the exit code the command ends with. */
  exit: (code: number) => void;
}

/** Every command and subcommand: output through io, errors as exceptions (not process.exit), help after a usage error. */
export function configureTree(cmd: Command, io: CliIo, helpWidth?: number): void {
  for (const c of allCommands(cmd)) {
    c.exitOverride()
      .showHelpAfterError('(add --help for usage)')
      .showSuggestionAfterError(true)
      .configureOutput({
        writeOut: io.out,
        writeErr: io.err,
        ...(helpWidth !== undefined ? { getOutHelpWidth: () => helpWidth, getErrHelpWidth: () => helpWidth } : {}),
      });
  }
}

/** The command and every subcommand below it, depth first. */
export function allCommands(cmd: Command): Command[] {
  return [cmd, ...(cmd.commands as Command[]).flatMap((c) => allCommands(c))];
}

/**
 * Runs a configured command tree. Commander's own outcomes map to our exit
 * codes: help asked for is 0; help shown because a command was missing, and
 * every parse error, are usage errors (2).
 */
export async function runCommand(cmd: Command, argv: string[], io: CliIo, code: () => number): Promise<number> {
  try {
    await cmd.parseAsync(argv, { from: 'user' });
    return code();
  } catch (err) {
    if (err instanceof CommanderError) {
      if (err.code === 'commander.helpDisplayed' || err.code === 'commander.version' || (err.code === 'commander.help' && err.exitCode === 0)) return ExitCode.Ok;
      // Commander already printed the message (and the help hint).
      return ExitCode.Usage;
    }
    if (err instanceof UsageError) {
      io.err(`error: ${err.message}\n(add --help for usage)\n`);
      return ExitCode.Usage;
    }
    throw err;
  }
}
