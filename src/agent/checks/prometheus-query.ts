// Custom check from the policy: no firing alert blocks the upgrade (the kured
// approach). Queries Prometheus' HTTP API (/api/v1/query) and fails when a
// returned series' alertname matches the filter.
import { fetchFailure } from './http-probe.ts';
import { durationMs, type PrometheusCheckSpec } from '../../protocol/policy.ts';
import type { Check, CheckOutcome } from './check.ts';

export interface PrometheusDeps {
  fetch?: typeof fetch;
}

interface QueryResponse {
  status?: string;
  error?: string;
  errorType?: string;
  data?: { resultType?: string; result?: { metric?: Record<string, string> }[] };
}

export function prometheusQueryCheck(spec: PrometheusCheckSpec, deps: PrometheusDeps = {}): Check {
  const doFetch = deps.fetch ?? fetch;
  const filter = new RegExp(spec.alertFilter);
  const url = `${spec.url.replace(/\/+$/, '')}/api/v1/query?query=${encodeURIComponent(spec.query)}`;
  return {
    name: spec.name,
    timeoutMs: durationMs(spec.timeout),
    async run(signal): Promise<CheckOutcome> {
      let res: Response;
      try {
        res = await doFetch(url, { signal, headers: { accept: 'application/json' } });
      } catch (err) {
        return { result: 'error', message: `Prometheus at ${spec.url} did not answer: ${fetchFailure(err)}` };
      }
      let body: QueryResponse;
      try {
        body = (await res.json()) as QueryResponse;
      } catch {
        return { result: 'error', message: `Prometheus at ${spec.url} answered ${res.status} without a JSON body` };
      }
      if (!res.ok || body.status !== 'success') {
        return { result: 'error', message: `Prometheus query ${spec.query} failed (${res.status}): ${body.errorType ?? ''} ${body.error ?? ''}`.trim() };
      }
      const series = body.data?.result ?? [];
      if (!Array.isArray(series)) return { result: 'error', message: `Prometheus query ${spec.query} returned a ${body.data?.resultType ?? 'non-vector'} result; a vector query is needed` };
      // A custom query may return series without alertname: match its metric name, or "".
      const names = series.map((s) => s.metric?.alertname ?? s.metric?.__name__ ?? '');
      const blocking = [...new Set(names.filter((n) => filter.test(n)))].sort();
      if (blocking.length > 0) {
        return { result: 'fail', message: `${blocking.length} alert(s) firing that block upgrades (filter /${spec.alertFilter}/): ${blocking.map((n) => n || '(series without alertname)').join(', ')}` };
      }
      const ignored = names.length ? `; ${names.length} series ignored by filter /${spec.alertFilter}/` : '';
      return { result: 'pass', message: `no blocking alerts for ${spec.query}${ignored}` };
    },
  };
}

