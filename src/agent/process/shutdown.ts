// Graceful stop of the agent process on SIGTERM (the kubelet's way of saying
// "this pod goes away") and SIGINT. The order matters:
//   1. abort the run signal: the engine starts no new step, and an idle wait
//      ends at once; a step in flight (one API call) finishes;
//   2. wait for the run to settle, at most `graceMs` (keep it below the
//      pod's terminationGracePeriodSeconds so we end before SIGKILL);
//   3. close what was registered, newest first (HTTP server, hub link, then
//      the journal last, so nothing writes to a closed file).
// Journal writes are synchronous (better-sqlite3), so a signal handler never
// runs in the middle of one: every transaction has committed or not started.
// Stopping this way loses nothing; the journal says where the attempt stands
// and the next start resumes it (persist-before-act: docs/architecture.md, invariant 1).
import type { Logger } from 'pino';

export type StopSignal = 'SIGTERM' | 'SIGINT';

/** The part of `process` this needs, injectable for tests. */
export interface SignalSource {
  on(event: StopSignal, listener: (signal: StopSignal) => void): unknown;
  off(event: StopSignal, listener: (signal: StopSignal) => void): unknown;
}

export interface ShutdownOptions {
  logger: Logger;
  signals?: SignalSource;
  /** How long the run may take to settle after a stop is requested. */
  graceMs?: number;
  /** How long each closer may take. */
  closeMs?: number;
  /** Ends the process when something keeps it alive after a stop; default process.exit. */
  exit?: (code: number) => void;
}

export class StopRequested extends Error {
  readonly reason: string;
  constructor(reason: string) {
    super(`stop requested: ${reason}`);
    this.name = 'StopRequested';
    this.reason = reason;
  }
}

interface Closer {
  name: string;
  close: () => Promise<void> | void;
}

export class GracefulShutdown {
  private readonly controller = new AbortController();
  private readonly closers: Closer[] = [];
  private readonly o: Required<ShutdownOptions>;

  constructor(o: ShutdownOptions) {
    this.o = { signals: process, graceMs: 20_000, closeMs: 5_000, exit: (code) => process.exit(code), ...o };
  }

  /** Aborts when a stop is requested; hand it to everything that loops. */
  get signal(): AbortSignal {
    return this.controller.signal;
  }

  /** Registers something to close after the run settled; closed in reverse order of registration. */
  onClose(name: string, close: () => Promise<void> | void): void {
    this.closers.push({ name, close });
  }

  /** A stop from inside (e.g. --exit-when-done), handled like a signal. */
  stop(reason: string): void {
    if (!this.controller.signal.aborted) this.controller.abort(new StopRequested(reason));
  }

  /**
   * Runs `main` until it returns or a stop is requested, then closes
   * everything. Resolves to the exit code: 0 for a clean stop, 1 when `main`
   * failed or did not settle in time.
   */
  async run(main: (signal: AbortSignal) => Promise<void>): Promise<number> {
    const { logger, signals } = this.o;
    let signalled = 0;
    const onSignal = (sig: StopSignal) => {
      signalled++;
      if (signalled === 1) {
        logger.info({ signal: sig, graceMs: this.o.graceMs }, 'stopping: no new steps; finishing the one in flight');
        this.stop(sig);
      } else {
        // A second Ctrl-C means "now": the journal is consistent at every instant anyway.
        logger.warn({ signal: sig }, 'second stop signal; exiting at once');
        this.o.exit(130);
      }
    };
    signals.on('SIGTERM', onSignal);
    signals.on('SIGINT', onSignal);

    let code = 0;
    try {
      const outcome = await this.settle(main);
      if (outcome === 'timeout') {
        logger.error({ graceMs: this.o.graceMs }, 'the current step did not finish in time; stopping anyway (the journal names it, the next start redoes it)');
        code = 1;
      } else if (outcome instanceof Error) {
        logger.fatal({ err: outcome }, 'agent stopped on an error');
        code = 1;
      }
    } finally {
      await this.closeAll();
      signals.off('SIGTERM', onSignal);
      signals.off('SIGINT', onSignal);
    }
    if (code !== 0 || this.signal.aborted) {
      // Whatever still holds the event loop (a hung socket) must not keep a
      // stopping pod alive until SIGKILL; unref'd, so a clean exit never waits.
      setTimeout(() => this.o.exit(code), this.o.closeMs).unref();
    }
    logger.info({ code }, 'agent stopped');
    return code;
  }

  private async settle(main: (signal: AbortSignal) => Promise<void>): Promise<'done' | 'timeout' | Error> {
    const run = main(this.signal).then(
      () => 'done' as const,
      (err: unknown) => (this.signal.aborted ? ('done' as const) : err instanceof Error ? err : new Error(String(err))),
    );
    // The grace period starts when the stop is requested, not when the run starts.
    let timer: NodeJS.Timeout | undefined;
    const deadline = new Promise<'timeout'>((resolve) => {
      const arm = () => (timer = setTimeout(() => resolve('timeout'), this.o.graceMs));
      if (this.signal.aborted) arm();
      else this.signal.addEventListener('abort', arm, { once: true });
    });
    try {
      return await Promise.race([run, deadline]);
    } finally {
      clearTimeout(timer);
    }
  }

  private async closeAll(): Promise<void> {
    for (const c of [...this.closers].reverse()) {
      let timer: NodeJS.Timeout | undefined;
      try {
        await Promise.race([
          Promise.resolve().then(c.close),
          new Promise<void>((_, reject) => (timer = setTimeout(() => reject(new Error(`did not close within ${this.o.closeMs} ms`)), this.o.closeMs))),
        ]);
      } catch (err) {
        this.o.logger.warn({ err: (err as Error).message, what: c.name }, 'close failed during shutdown');
      } finally {
        clearTimeout(timer);
      }
    }
  }
}
