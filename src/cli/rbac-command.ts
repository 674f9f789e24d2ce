// `fleetlet rbac`: prints the agent's RBAC for a list of namespaces (wiring only).
import { Command } from '@commander-js/extra-typings';
import { agentRbacYaml, InvalidNamespaceList, parseNamespaceList } from '../lib/agent-rbac.ts';
import { ExitCode, type CommandContext } from './cli-support.ts';

export function rbacCommand(ctx: CommandContext) {
  return new Command('rbac')
    .description("print the Roles, RoleBindings and ConfigMap that give the agent write access in exactly these namespaces (and its own), e.g. fleetlet rbac --allowed-namespaces monitoring,ingress > manifests/base/allowed-namespaces.yaml")
    .requiredOption('--allowed-namespaces <a,b>', 'the namespaces releases may touch (exact names, no wildcards)')
    .option('--namespace <ns>', "the agent's own namespace", 'fleetlet-system')
    .action((o) => {
      try {
        const allowedNamespaces = parseNamespaceList(o.allowedNamespaces);
        const custom = o.namespace !== 'fleetlet-system' ? ` --namespace ${o.namespace}` : '';
        ctx.io.out(agentRbacYaml({ allowedNamespaces, agentNamespace: o.namespace }, `fleetlet rbac --allowed-namespaces ${allowedNamespaces.join(',')}${custom}`));
        ctx.exit(ExitCode.Ok);
      } catch (err) {
        if (!(err instanceof InvalidNamespaceList)) throw err;
        ctx.io.err(`fleetlet rbac: ${err.message}\n`);
        ctx.exit(ExitCode.Usage);
      }
    });
}
