// The single `fleetlet` binary: one subcommand per job.
import { agentCommand, agentUsage } from './agent-command.ts';
import { statusCommand } from './status-command.ts';

const usage = `fleetlet <command> [options]

Commands:
  agent     run the edge agent on a cluster
  hub       run the reference hub
  status    print the current upgrade attempt and history from the journal
  rollout   create, watch and steer rolling upgrades on a hub (create|list|status|pause|resume|cancel|rollback)
  demo      start the built-in test control plane and show fleetlet upgrading on it
  keygen    create an Ed25519 release key pair for a hub
  sign      sign a release file with a hub's release key (air-gapped delivery)

${agentUsage}`;

export async function main(argv: string[]): Promise<number> {
  const [cmd, ...rest] = argv;
  switch (cmd) {
    case 'agent':
      return agentCommand(rest);
    case 'status':
      return statusCommand(rest);
    case 'hub':
      return (await import('./hub-command.ts')).hubCommand(rest);
    case 'rollout':
      return (await import('./rollout-command.ts')).rolloutCommand(rest);
    case 'demo':
      return (await import('./demo-command.ts')).demoCommand(rest);
    case 'keygen':
    case 'sign':
      return (await import('./keys-command.ts')).keysCommand(cmd, rest);
    case undefined:
    case '-h':
    case '--help':
    case 'help':
      process.stdout.write(`${usage}\n`);
      return cmd === undefined ? 2 : 0;
    default:
      process.stderr.write(`unknown command "${cmd}"\n\n${usage}\n`);
      return 2;
  }
}
