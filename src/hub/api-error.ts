// The one error type the HTTP API turns into a response.
export class ApiError extends Error {
  override readonly name = 'ApiError';
  readonly status: number;
  /** CamelCase code a client can branch on; `message` says what to do. */
  readonly reason: string;
  readonly details: unknown;
  constructor(status: number, reason: string, message: string, details?: unknown) {
    super(message);
    this.status = status;
    this.reason = reason;
    this.details = details;
  }
}
