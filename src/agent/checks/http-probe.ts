// Custom check from the policy: an HTTP endpoint a local application exposes
// to say whether it is safe to upgrade now.
import { durationMs, type HttpCheckSpec } from '../../protocol/policy.ts';
import type { Check, CheckOutcome } from './check.ts';

/** Reading more than this of a body to match a pattern is a misconfigured probe, not a health signal. */
const MAX_BODY_BYTES = 1024 * 1024;

export interface HttpProbeDeps {
  fetch?: typeof fetch;
}

export function httpProbeCheck(spec: HttpCheckSpec, deps: HttpProbeDeps = {}): Check {
  const doFetch = deps.fetch ?? fetch;
  const bodyPattern = spec.bodyMatches === undefined ? undefined : new RegExp(spec.bodyMatches);
  return {
    name: spec.name,
    timeoutMs: durationMs(spec.timeout),
    async run(signal): Promise<CheckOutcome> {
      let res: Response;
      try {
        res = await doFetch(spec.url, { method: spec.method, headers: spec.headers ?? {}, signal, redirect: 'follow' });
      } catch (err) {
        return { result: 'error', message: `${spec.method} ${spec.url}: ${fetchFailure(err)}` };
      }
      if (!spec.expectStatus.includes(res.status)) {
        await res.body?.cancel().catch(() => undefined);
        return { result: 'fail', message: `${spec.method} ${spec.url} answered ${res.status}, expected ${spec.expectStatus.join(' or ')}` };
      }
      if (!bodyPattern || spec.method === 'HEAD') {
        await res.body?.cancel().catch(() => undefined);
        return { result: 'pass', message: `${spec.method} ${spec.url} answered ${res.status}` };
      }
      const body = await readCapped(res, MAX_BODY_BYTES);
      if (bodyPattern.test(body)) return { result: 'pass', message: `${spec.method} ${spec.url} answered ${res.status} and the body matches /${spec.bodyMatches}/` };
      return { result: 'fail', message: `${spec.method} ${spec.url} answered ${res.status} but the body does not match /${spec.bodyMatches}/: ${JSON.stringify(body.slice(0, 200))}` };
    },
  };
}

async function readCapped(res: Response, maxBytes: number): Promise<string> {
  if (!res.body) return '';
  const reader = res.body.getReader();
  const chunks: Uint8Array[] = [];
  let size = 0;
  for (;;) {
    const { done, value } = await reader.read();
    if (done) break;
    chunks.push(value);
    size += value.byteLength;
    if (size >= maxBytes) {
      await reader.cancel();
      break;
    }
  }
  return new TextDecoder().decode(Buffer.concat(chunks).subarray(0, maxBytes));
}

/** undici hides the useful part ("ECONNREFUSED 127.0.0.1:9") in err.cause. */
/** What a failed fetch says, with the socket-level cause (ECONNREFUSED, ENOTFOUND…) that fetch wraps. */
export function fetchFailure(err: unknown): string {
  if (!(err instanceof Error)) return String(err);
  const cause = err.cause;
  if (cause instanceof Error) {
    const code = (cause as NodeJS.ErrnoException).code;
    return `${err.message}: ${code ? `${code} ` : ''}${cause.message}`;
  }
  return err.message;
}
