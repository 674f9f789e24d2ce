// Runs one container of a rendered pod template with the real Docker engine,
// the way a kubelet would start it: the ServiceAccount's token (TokenRequest),
// the cluster CA and the namespace at the standard in-cluster path,
// KUBERNETES_SERVICE_HOST/PORT, env resolved from the live ConfigMaps,
// Secrets and the downward API, $(VAR) expanded in args, ConfigMap and
// Secret volumes projected as files, emptyDir as a size-limited tmpfs, and the security
// context as runtime flags (user, group, fsGroup, read-only root filesystem,
// no capabilities, no privilege escalation).
//
// The test control plane listens on loopback only, so the container shares
// the host network; two things follow, both named in the caller's options:
// the API server is reached at 127.0.0.1, and the container's HTTP port is
// moved to a free one so parallel test runs never collide.
import { chmodSync, chownSync, mkdirSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as k8s from '@kubernetes/client-node';
import { docker } from './docker-engine.ts';

type EnvVar = k8s.V1EnvVar;

export interface PodContainerOptions {
  kc: k8s.KubeConfig;
  /** Docker host and image to run (the pod's image name is replaced by the locally built one). */
  dockerHost: string;
  image: string;
  namespace: string;
  podName: string;
  template: k8s.V1PodTemplateSpec;
  container: string;
  /** The API server's serving CA (the control plane's cert dir). */
  caFile: string;
  apiHost: string;
  apiPort: number;
  /** Replaces one argument, e.g. the HTTP address (see the header). */
  rewriteArg?: (arg: string) => string;
  /** Host directory per PersistentVolumeClaim/hostPath volume name. */
  volumeDirs: Record<string, string>;
}

export interface PodContainer {
  id: string;
  /** The `docker run` arguments used, for a failure message. */
  args: string[];
  logs(): Promise<string>;
  /** `docker stop` (SIGTERM, then SIGKILL after the pod's grace period); the exit code. */
  stop(): Promise<number>;
  remove(): Promise<void>;
}

export async function runPodContainer(o: PodContainerOptions): Promise<PodContainer> {
  const core = o.kc.makeApiClient(k8s.CoreV1Api);
  const spec = o.template.spec!;
  const c = spec.containers.find((x) => x.name === o.container);
  if (!c) throw new Error(`the pod template has no container ${o.container}`);
  const dir = mkdtempSync(join(tmpdir(), 'fleetlet-pod-'));
  const mounts: string[] = [];

  // The ServiceAccount volume the kubelet projects into every pod that automounts one.
  if (spec.automountServiceAccountToken !== false) {
    const sa = join(dir, 'serviceaccount');
    mkdirSync(sa);
    const res = await core.createNamespacedServiceAccountToken({ name: spec.serviceAccountName ?? 'default', namespace: o.namespace, body: { spec: { audiences: [], expirationSeconds: 3600 } } });
    if (!res.status?.token) throw new Error(`TokenRequest for ${spec.serviceAccountName} returned no token`);
    writeFileSync(join(sa, 'token'), res.status.token);
    writeFileSync(join(sa, 'ca.crt'), readFileSync(o.caFile, 'utf8'));
    writeFileSync(join(sa, 'namespace'), o.namespace);
    for (const f of ['token', 'ca.crt', 'namespace']) chmodSync(join(sa, f), 0o644);
    mounts.push('-v', `${sa}:/var/run/secrets/kubernetes.io/serviceaccount:ro`);
  }

  const fsGroup = spec.securityContext?.fsGroup;
  for (const vm of c.volumeMounts ?? []) {
    const v = spec.volumes?.find((x) => x.name === vm.name);
    if (!v) throw new Error(`volume ${vm.name} is mounted but not declared`);
    if (v.configMap) {
      const cm = await core.readNamespacedConfigMap({ name: v.configMap.name!, namespace: o.namespace });
      const d = join(dir, `cm-${v.name}`);
      mkdirSync(d);
      for (const [k, val] of Object.entries(cm.data ?? {})) writeFileSync(join(d, k), val);
      mounts.push('-v', `${d}:${vm.mountPath}:ro`);
    } else if (v.secret) {
      // As the kubelet projects it: one file per key, mode defaultMode (0644 when unset), group
      // fsGroup; an optional Secret that does not exist yet is an empty directory.
      const secret = await core.readNamespacedSecret({ name: v.secret.secretName!, namespace: o.namespace }).catch(() => undefined);
      if (!secret && !v.secret.optional) throw new Error(`volume ${v.name}: Secret ${v.secret.secretName} is missing (the kubelet would not start the container)`);
      const d = join(dir, `secret-${v.name}`);
      mkdirSync(d);
      for (const [k, val] of Object.entries(secret?.data ?? {})) {
        const file = join(d, k);
        writeFileSync(file, Buffer.from(val, 'base64'));
        if (fsGroup !== undefined) chownSync(file, 0, fsGroup);
        chmodSync(file, v.secret.defaultMode ?? 0o644);
      }
      mounts.push('-v', `${d}:${vm.mountPath}:ro`);
    } else if (v.emptyDir) {
      const size = v.emptyDir.sizeLimit ? `,size=${v.emptyDir.sizeLimit.replace(/i$/, '').toLowerCase()}` : '';
      mounts.push('--tmpfs', `${vm.mountPath}:rw,noexec,nosuid${size}`);
    } else if (v.persistentVolumeClaim || v.hostPath) {
      const d = o.volumeDirs[v.name];
      if (!d) throw new Error(`no host directory given for volume ${v.name}`);
      // fsGroup: the kubelet hands a PVC's root to the pod's group.
      if (fsGroup !== undefined && v.persistentVolumeClaim) {
        chownSync(d, 0, fsGroup);
        chmodSync(d, 0o2770);
      }
      mounts.push('-v', `${d}:${vm.mountPath}${vm.readOnly ? ':ro' : ''}`);
    } else {
      throw new Error(`volume ${v.name}: only configMap, secret, emptyDir, persistentVolumeClaim and hostPath are supported here`);
    }
  }

  const env: Record<string, string> = { KUBERNETES_SERVICE_HOST: o.apiHost, KUBERNETES_SERVICE_PORT: String(o.apiPort) };
  for (const e of c.env ?? []) {
    const value = await resolveEnv(core, o, e);
    if (value !== undefined) env[e.name] = value;
  }
  const expand = (s: string) => s.replace(/\$\(([A-Za-z_][A-Za-z0-9_]*)\)/g, (m, name: string) => env[name] ?? m);
  const args = (c.args ?? []).map(expand).map((a) => o.rewriteArg?.(a) ?? a);
  const command = (c.command ?? []).map(expand);

  const sc = { ...spec.securityContext, ...c.securityContext };
  const flags: string[] = ['--network=host', `--name=${o.podName}`];
  if (sc.runAsUser !== undefined) flags.push(`--user=${sc.runAsUser}:${sc.runAsGroup ?? sc.runAsUser}`);
  if (fsGroup !== undefined) flags.push(`--group-add=${fsGroup}`);
  if (c.securityContext?.readOnlyRootFilesystem) flags.push('--read-only');
  for (const cap of c.securityContext?.capabilities?.drop ?? []) flags.push(`--cap-drop=${cap}`);
  for (const cap of c.securityContext?.capabilities?.add ?? []) flags.push(`--cap-add=${cap}`);
  if (c.securityContext?.allowPrivilegeEscalation === false) flags.push('--security-opt=no-new-privileges');
  if (c.resources?.limits?.memory) flags.push(`--memory=${c.resources.limits.memory.replace(/i$/, '').toLowerCase()}`);
  const stopTimeout = spec.terminationGracePeriodSeconds ?? 30;
  flags.push(`--stop-timeout=${stopTimeout}`);

  const runArgs = [
    'run', '--detach', ...flags, ...mounts,
    ...Object.entries(env).flatMap(([k, v]) => ['--env', `${k}=${v}`]),
    ...(command.length > 0 ? ['--entrypoint', command[0]!] : []),
    o.image,
    ...command.slice(1),
    ...args,
  ];
  const id = (await docker(o.dockerHost, runArgs)).stdout.trim();
  return {
    id,
    args: runArgs,
    logs: async () => {
      const r = await docker(o.dockerHost, ['logs', id]);
      return r.stdout + r.stderr;
    },
    stop: async () => {
      await docker(o.dockerHost, ['stop', `--time=${stopTimeout}`, id], { timeoutMs: (stopTimeout + 30) * 1000 });
      return Number((await docker(o.dockerHost, ['inspect', '--format', '{{.State.ExitCode}}', id])).stdout.trim());
    },
    remove: async () => {
      await docker(o.dockerHost, ['rm', '--force', id]).catch(() => {});
    },
  };
}

async function resolveEnv(core: k8s.CoreV1Api, o: PodContainerOptions, e: EnvVar): Promise<string | undefined> {
  if (e.value !== undefined) return e.value;
  const from = e.valueFrom;
  if (!from) return '';
  if (from.fieldRef) {
    const path = from.fieldRef.fieldPath;
    if (path === 'metadata.namespace') return o.namespace;
    if (path === 'metadata.name') return o.podName;
    throw new Error(`env ${e.name}: fieldRef ${path} is not supported here`);
  }
  if (from.configMapKeyRef) {
    const ref = from.configMapKeyRef;
    const cm = await core.readNamespacedConfigMap({ name: ref.name!, namespace: o.namespace }).catch(() => undefined);
    const v = cm?.data?.[ref.key];
    if (v === undefined && !ref.optional) throw new Error(`env ${e.name}: ConfigMap ${ref.name} key ${ref.key} is missing (the kubelet would not start the container)`);
    return v;
  }
  if (from.secretKeyRef) {
    const ref = from.secretKeyRef;
    const s = await core.readNamespacedSecret({ name: ref.name!, namespace: o.namespace }).catch(() => undefined);
    const v = s?.data?.[ref.key];
    if (v === undefined && !ref.optional) throw new Error(`env ${e.name}: Secret ${ref.name} key ${ref.key} is missing (the kubelet would not start the container)`);
    return v === undefined ? undefined : Buffer.from(v, 'base64').toString('utf8');
  }
  throw new Error(`env ${e.name}: this valueFrom is not supported here`);
}
