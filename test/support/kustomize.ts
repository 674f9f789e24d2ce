// A small renderer for the kustomize subset manifests/ uses, so tests can
// apply exactly what `kubectl apply -k` would (kubectl/kustomize are not
// available here). It refuses anything outside that subset instead of
// guessing, so the manifests cannot quietly grow features this renderer
// would get wrong:
//   resources (files and directories), components, namespace,
//   configMapGenerator (files, literals; disableNameSuffixHash only),
//   generatorOptions (disableNameSuffixHash, labels),
//   patches (path only: strategic-merge patches targeting by kind and name).
// Like kustomize's default load restrictor, files (not directories) must lie
// inside the kustomization's own directory.
import { existsSync, readFileSync, statSync } from 'node:fs';
import { basename, isAbsolute, join, relative, resolve, sep } from 'node:path';
import YAML from 'yaml';

export interface KObject {
  apiVersion: string;
  kind: string;
  metadata: { name: string; namespace?: string; labels?: Record<string, string>; [k: string]: unknown };
  [k: string]: unknown;
}

export class KustomizeUnsupported extends Error {
  readonly reason: string;
  constructor(reason: string, message: string) {
    super(message);
    this.name = 'KustomizeUnsupported';
    this.reason = reason;
  }
}

const known = new Set(['apiVersion', 'kind', 'namespace', 'resources', 'components', 'patches', 'configMapGenerator', 'generatorOptions']);

/** Kinds the namespace transformer leaves alone (the cluster-scoped ones manifests/ uses, and a few more). */
const clusterScoped = new Set(['Namespace', 'ClusterRole', 'ClusterRoleBinding', 'CustomResourceDefinition', 'PersistentVolume', 'StorageClass', 'PriorityClass', 'Node']);

interface Kustomization {
  apiVersion?: string;
  kind?: string;
  namespace?: string;
  resources?: string[];
  components?: string[];
  patches?: ({ path?: string; patch?: string; target?: unknown } | string)[];
  configMapGenerator?: { name: string; namespace?: string; files?: string[]; literals?: string[]; options?: unknown; behavior?: string }[];
  generatorOptions?: { disableNameSuffixHash?: boolean; labels?: Record<string, string> };
}

export function renderKustomization(dir: string): KObject[] {
  return render(resolve(dir), 'Kustomization');
}

/** Renders a kustomize Component on its own (what it adds to an overlay that includes it). */
export function renderComponent(dir: string): KObject[] {
  return render(resolve(dir), 'Component');
}

function render(dir: string, expectKind: 'Kustomization' | 'Component'): KObject[] {
  const file = ['kustomization.yaml', 'kustomization.yml', 'Kustomization'].map((f) => join(dir, f)).find((f) => existsSync(f));
  if (!file) throw new KustomizeUnsupported('NoKustomization', `${dir} has no kustomization.yaml`);
  const k = YAML.parse(readFileSync(file, 'utf8')) as Kustomization;
  const kind = k.kind ?? 'Kustomization';
  if (kind !== expectKind) throw new KustomizeUnsupported('WrongKind', `${file}: kind ${kind}, expected ${expectKind}`);
  const wantApi = kind === 'Component' ? 'kustomize.config.k8s.io/v1alpha1' : 'kustomize.config.k8s.io/v1beta1';
  if (k.apiVersion !== undefined && k.apiVersion !== wantApi) throw new KustomizeUnsupported('WrongApiVersion', `${file}: apiVersion ${k.apiVersion}, expected ${wantApi}`);
  for (const key of Object.keys(k)) if (!known.has(key)) throw new KustomizeUnsupported('UnsupportedField', `${file}: field "${key}" is not supported by test/support/kustomize.ts`);

  const out: KObject[] = [];
  const add = (objs: KObject[], from: string) => {
    for (const o of objs) {
      if (out.some((x) => sameId(x, o))) throw new KustomizeUnsupported('DuplicateResource', `${from}: ${idOf(o)} is already in the resource set of ${dir}`);
      out.push(o);
    }
  };

  for (const r of k.resources ?? []) {
    const p = resolve(dir, r);
    if (!existsSync(p)) throw new KustomizeUnsupported('MissingResource', `${file}: resource ${r} does not exist`);
    if (statSync(p).isDirectory()) add(render(p, 'Kustomization'), r);
    else add(readObjects(insideRoot(dir, r, file)), r);
  }

  for (const c of k.components ?? []) {
    const p = resolve(dir, c);
    if (!existsSync(p) || !statSync(p).isDirectory()) throw new KustomizeUnsupported('MissingComponent', `${file}: component ${c} is not a directory`);
    // A component may transform the set it joins; the subset here only adds its own resources.
    add(render(p, 'Component'), c);
  }

  const gen = k.generatorOptions ?? {};
  for (const g of k.configMapGenerator ?? []) {
    if (g.behavior && g.behavior !== 'create') throw new KustomizeUnsupported('UnsupportedField', `${file}: configMapGenerator ${g.name}: behavior ${g.behavior}`);
    if (g.options !== undefined) throw new KustomizeUnsupported('UnsupportedField', `${file}: configMapGenerator ${g.name}: per-generator options`);
    if (gen.disableNameSuffixHash !== true) throw new KustomizeUnsupported('NameHash', `${file}: configMapGenerator ${g.name} needs generatorOptions.disableNameSuffixHash: true (name hashes are not implemented)`);
    const data: Record<string, string> = {};
    for (const f of g.files ?? []) {
      const [key, path] = f.includes('=') ? [f.slice(0, f.indexOf('=')), f.slice(f.indexOf('=') + 1)] : [basename(f), f];
      data[key] = readFileSync(insideRoot(dir, path, file), 'utf8');
    }
    for (const l of g.literals ?? []) {
      const i = l.indexOf('=');
      if (i < 1) throw new KustomizeUnsupported('BadLiteral', `${file}: literal "${l}" is not key=value`);
      data[l.slice(0, i)] = l.slice(i + 1);
    }
    const cm: KObject = { apiVersion: 'v1', kind: 'ConfigMap', metadata: { name: g.name, ...(g.namespace ? { namespace: g.namespace } : {}), ...(gen.labels ? { labels: { ...gen.labels } } : {}) }, data };
    add([cm], `configMapGenerator ${g.name}`);
  }

  for (const p of k.patches ?? []) {
    if (typeof p === 'string' || !p.path || p.patch !== undefined || p.target !== undefined) {
      throw new KustomizeUnsupported('UnsupportedField', `${file}: only \`patches: - path: <strategic merge patch>\` is supported`);
    }
    for (const patch of readObjects(insideRoot(dir, p.path, file))) {
      const target = out.find((o) => o.kind === patch.kind && o.metadata.name === patch.metadata.name && groupOf(o) === groupOf(patch) && (!patch.metadata.namespace || patch.metadata.namespace === o.metadata.namespace));
      if (!target) throw new KustomizeUnsupported('PatchTargetMissing', `${file}: patch ${p.path} matches no resource (${idOf(patch)})`);
      out[out.indexOf(target)] = strategicMerge(target, patch) as KObject;
    }
  }

  if (k.namespace) {
    for (const o of out) {
      if (clusterScoped.has(o.kind)) {
        // As kustomize does: ServiceAccount subjects follow the namespace their account moved to.
        if (o.kind === 'ClusterRoleBinding') setSubjectNamespaces(o, k.namespace);
        continue;
      }
      o.metadata.namespace = k.namespace;
      if (o.kind === 'RoleBinding') setSubjectNamespaces(o, k.namespace);
    }
  }
  return out;
}

function setSubjectNamespaces(o: KObject, ns: string): void {
  for (const s of (o.subjects as { kind: string; namespace?: string }[] | undefined) ?? []) if (s.kind === 'ServiceAccount') s.namespace = ns;
}

function insideRoot(root: string, path: string, from: string): string {
  const p = resolve(root, path);
  const rel = relative(root, p);
  if (rel === '' || rel.startsWith(`..${sep}`) || rel === '..' || isAbsolute(rel)) {
    throw new KustomizeUnsupported('OutsideRoot', `${from}: ${path} is outside ${root}; kustomize's load restrictor refuses files outside the kustomization directory`);
  }
  if (!existsSync(p)) throw new KustomizeUnsupported('MissingFile', `${from}: ${path} does not exist`);
  return p;
}

export function readObjects(path: string): KObject[] {
  const docs = YAML.parseAllDocuments(readFileSync(path, 'utf8'));
  const out: KObject[] = [];
  for (const d of docs) {
    if (d.errors.length) throw new KustomizeUnsupported('InvalidYaml', `${path}: ${d.errors[0]!.message}`);
    const o = d.toJS() as KObject | null;
    if (o === null) continue;
    if (!o.apiVersion || !o.kind || !o.metadata?.name) throw new KustomizeUnsupported('NotAnObject', `${path}: every document needs apiVersion, kind and metadata.name`);
    out.push(o);
  }
  return out;
}

const groupOf = (o: KObject) => (o.apiVersion.includes('/') ? o.apiVersion.split('/')[0] : '');
const idOf = (o: KObject) => `${o.kind}.${groupOf(o) || 'core'} ${o.metadata.namespace ? `${o.metadata.namespace}/` : ''}${o.metadata.name}`;
const sameId = (a: KObject, b: KObject) => a.kind === b.kind && groupOf(a) === groupOf(b) && a.metadata.name === b.metadata.name && (a.metadata.namespace ?? '') === (b.metadata.namespace ?? '');

/** Strategic merge as far as manifests/ needs it: maps merge, `null` deletes, lists of named items merge by name, other lists replace. */
export function strategicMerge(base: unknown, patch: unknown): unknown {
  if (patch === null) return undefined;
  if (Array.isArray(patch)) {
    if (!Array.isArray(base) || !patch.every(isNamed) || !base.every(isNamed)) return structuredClone(patch);
    const merged = base.map((b) => {
      const p = patch.find((x) => x.name === b.name);
      return p ? strategicMerge(b, p) : structuredClone(b);
    });
    for (const p of patch) if (!base.some((b) => b.name === p.name)) merged.push(structuredClone(p));
    return merged;
  }
  if (isPlainObject(patch)) {
    const out: Record<string, unknown> = isPlainObject(base) ? structuredClone(base) : {};
    for (const [k, v] of Object.entries(patch)) {
      const m = strategicMerge(out[k], v);
      if (m === undefined) delete out[k];
      else out[k] = m;
    }
    return out;
  }
  return patch;
}

const isPlainObject = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);
const isNamed = (v: unknown): v is { name: string } => isPlainObject(v) && typeof v.name === 'string';
