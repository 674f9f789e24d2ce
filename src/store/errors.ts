export class JournalError extends Error {
  readonly reason: string;
  constructor(reason: string, message: string, options?: ErrorOptions) {
    super(message, options);
    this.name = 'JournalError';
    this.reason = reason;
  }
}
