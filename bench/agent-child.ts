// Entry of the agent-idle benchmark's child process: one agent runtime
// (journal, Kubernetes client, agent loop, hub link), alone in its process,
// answering "stats" over IPC.
import { createPublicKey } from 'node:crypto';
import * as k8s from '@kubernetes/client-node';
import { pino } from 'pino';
import { createAgentRuntime } from '../src/cli/agent-runtime.ts';
import { vmRssBytes } from './stats.ts';

export interface AgentChildConfig {
  kubeconfigPath: string;
  journalPath: string;
  clusterId: string;
  namespace: string;
  hubUrl: string;
  bootstrapToken: string;
  releaseKeyPem: string;
  heartbeatMs: number;
}

export type AgentChildReply = { type: 'stats'; vmRss: number; heapUsed: number; cpuUserUs: number; cpuSystemUs: number; uptimeMs: number };

const config = JSON.parse(process.env.FLEETLET_BENCH_AGENT ?? '{}') as AgentChildConfig;
const started = Date.now();
const kc = new k8s.KubeConfig();
kc.loadFromFile(config.kubeconfigPath);
const runtime = await createAgentRuntime({
  clusterId: config.clusterId,
  journalPath: config.journalPath,
  kubeConfig: kc,
  releaseKeys: [createPublicKey(config.releaseKeyPem)],
  logger: pino({ level: process.env.FLEETLET_BENCH_LOG ?? 'silent' }),
  namespace: config.namespace,
  hub: { url: config.hubUrl, bootstrapToken: config.bootstrapToken, heartbeatMs: config.heartbeatMs },
});
const controller = new AbortController();
const running = runtime.run(controller.signal).catch(() => {});

process.on('message', (m: { type: string }) => {
  if (m.type === 'stats') {
    const cpu = process.cpuUsage();
    const reply: AgentChildReply = { type: 'stats', vmRss: vmRssBytes() ?? process.memoryUsage().rss, heapUsed: process.memoryUsage().heapUsed, cpuUserUs: cpu.user, cpuSystemUs: cpu.system, uptimeMs: Date.now() - started };
    process.send?.(reply);
  } else if (m.type === 'stop') {
    controller.abort();
    void running.then(() => process.disconnect());
  }
});
