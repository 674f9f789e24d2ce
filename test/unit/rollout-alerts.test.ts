// The alert rules shipped in manifests/hub read series the hub really
// exports, the plain rule file and the PrometheusRule agree, and each
// alerting situation produces the series its rule fires on.
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { afterEach, beforeEach, describe, it } from 'node:test';
import YAML from 'yaml';
import { createHubMetrics } from '../../src/hub/metrics.ts';
import { createRollout, tickRollouts } from '../../src/hub/rollout/rollout-operations.ts';
import { ids, RolloutHub } from '../support/rollout-hub.ts';
import { sampleReleaseRequest } from '../support/releases.ts';

const dir = new URL('../../manifests/hub/', import.meta.url);
type Rule = { alert: string; expr: string; for?: string; labels: { severity: string }; annotations: { summary: string; description: string } };
type Groups = { groups: { name: string; rules: Rule[] }[] };

describe('hub alert rules', () => {
  let h: RolloutHub;
  beforeEach(async () => {
    h = await RolloutHub.open();
  });
  afterEach(() => h.close());

  const plain = YAML.parse(readFileSync(new URL('fleetlet-hub-alerts.rules.yaml', dir), 'utf8')) as Groups;
  const operator = YAML.parse(readFileSync(new URL('prometheus-rule.yaml', dir), 'utf8')) as { kind: string; spec: Groups };
  const rules = plain.groups.flatMap((g) => g.rules);

  it('ships the four alerts, the same in both files', async () => {
    assert.equal(operator.kind, 'PrometheusRule');
    assert.deepEqual(operator.spec, plain);
    assert.deepEqual(rules.map((r) => r.alert).sort(), ['FleetletClusterStuckWaitingForWindow', 'FleetletClusterUnknownTooLong', 'FleetletClusterUpgradeFailed', 'FleetletRolloutPausedOnFailures']);
    for (const r of rules) assert.ok(['critical', 'warning'].includes(r.labels.severity) && r.annotations.summary && r.annotations.description, r.alert);
  });

  it('fires on series the hub exports in each situation', async () => {
    const fleet = ids('edge', 12);
    await h.enrol(fleet, (_id, i) => ({ ring: i === 0 ? 'canary' : 'prod' }));
    // A canary that fails: the rollout pauses (MandatoryGroupFailed) and the cluster's upgrade failed.
    await createRollout(h.ctx, {
      name: 'bad',
      target: { kind: 'Release', release: sampleReleaseRequest('2.0.0') },
      selector: { clusterIds: ['edge-00000', 'edge-00010', 'edge-00011'] },
      groups: [{ name: 'canary', mandatory: true, selector: { matchLabels: { ring: 'canary' } } }],
      strategy: { type: 'All' },
    });
    await h.attempt('edge-00000', 'RolledBack', 'HealthCheckFailed');
    await tickRollouts(h.ctx);
    // Another waits for its local window for three days; another went silent two hours ago.
    await createRollout(h.ctx, { name: 'other', target: { kind: 'Release', release: sampleReleaseRequest('2.0.0') }, selector: { clusterIds: ['edge-00001'] }, strategy: { type: 'All' } });
    await h.attempt('edge-00001', 'WaitingForWindow', 'OutsideWindow');
    h.disconnected.add('edge-00002');
    h.clock.advance(3 * 86_400_000);
    await h.heartbeat();

    const text = await createHubMetrics(h.ctx).render();
    const exported = new Set([...text.matchAll(/^# TYPE (\S+) gauge$/gm)].map((m) => m[1]));
    for (const r of rules) {
      for (const [name] of r.expr.matchAll(/fleetlet_[a-z_]+/g)) assert.ok(exported.has(name), `${r.alert} reads ${name}, which the hub does not export`);
    }
    assert.match(text, /^fleetlet_hub_rollout_phase\{rollout="bad",phase="Paused",reason="MandatoryGroupFailed"\} 1$/m);
    assert.match(text, /^fleetlet_hub_cluster_upgrade_failed\{cluster="edge-00000",release="edge-addons",version="2.0.0",reason="HealthCheckFailed"\} 1$/m);
    assert.match(text, /^fleetlet_hub_cluster_waiting_for_window_seconds\{cluster="edge-00001",release="edge-addons",version="2.0.0"\} 259200$/m);
    assert.match(text, /^fleetlet_hub_cluster_unknown_seconds\{cluster="edge-00002"\} 259200$/m);
    assert.doesNotMatch(text, /fleetlet_hub_cluster_unknown_seconds\{cluster="edge-00003"\}/, 'only Unknown clusters have the series');
    assert.match(text, /^fleetlet_hub_clusters\{availability="Unknown"\} 1$/m);
  });
});
