export class JournalError extends Error {
  readonly reason: string;
  constructor(reason: string, message: string, options?: ErrorOptions) {
    super(message, options);
    this.name = 'JournalError';
    this.reason = reason;
  }
}

/**
 * A journal at a format level above what this agent reads (src/store/migrations.ts):
 * a newer agent changed its meaning. Refused before anything is written, so
 * the file stays as the newer agent left it.
 */
export class JournalTooNew extends JournalError {
  readonly journalLevel: number;
  readonly knownLevel: number;
  constructor(o: { path: string; journalLevel: number; knownLevel: number; agentVersion?: string | undefined; writtenBy?: string | undefined }) {
    const writer = o.writtenBy ? `fleetlet agent ${o.writtenBy}` : 'a newer fleetlet agent';
    super(
      'JournalTooNew',
      `journal ${o.path} is at format level ${o.journalLevel} (raised by ${writer}), but this agent${o.agentVersion ? ` (${o.agentVersion})` : ''} reads format levels up to ${o.knownLevel}: ` +
        `refusing to open it rather than misread it; the file is left untouched. Run ${o.writtenBy ? `agent ${o.writtenBy}` : 'the agent version that wrote it'} or a newer one on this journal ` +
        '(roll the agent forward again); do not delete the journal: it holds what is installed and the reports the hub has not acknowledged (docs/deploy.md, "The journal across agent versions").',
    );
    this.name = 'JournalTooNew';
    this.journalLevel = o.journalLevel;
    this.knownLevel = o.knownLevel;
  }
}
