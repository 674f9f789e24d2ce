// `fleetlet keygen` and `fleetlet sign`: the release key tools a hub
// operator needs, also for delivering a release without a hub link
// (the envelope: docs/protocol.md "Signed envelope").
import { readFileSync, writeFileSync } from 'node:fs';
import { Command } from '@commander-js/extra-typings';
import { durationArg, ExitCode, wholeNumber, type CommandContext } from './cli-support.ts';

export function keygenCommand(ctx: CommandContext) {
  return new Command('keygen')
    .description('create an Ed25519 release key pair for a hub')
    .option('--out <prefix>', 'writes <prefix>.pem (private, mode 0600) and <prefix>.pub.pem', 'release-key')
    .action(async (o) => {
      const { exportPrivateKeyPem, exportPublicKeyPem, generateReleaseKey } = await import('../protocol/signing.ts');
      const pair = generateReleaseKey();
      writeFileSync(`${o.out}.pem`, exportPrivateKeyPem(pair.privateKey), { mode: 0o600 });
      writeFileSync(`${o.out}.pub.pem`, exportPublicKeyPem(pair.publicKey));
      ctx.io.out(`wrote ${o.out}.pem (keep secret, for the hub) and ${o.out}.pub.pem (for agents)\n`);
      ctx.exit(ExitCode.Ok);
    });
}

export function signCommand(ctx: CommandContext) {
  return new Command('sign')
    .description('sign a release file with a hub release key, for an agent without a hub link (fleetlet agent --release-file)')
    .argument('<release>', 'the release, YAML or JSON (docs/protocol.md "Release")')
    .requiredOption('--key <pem>', 'the hub private release key (fleetlet keygen)')
    .option('--out <file>', 'write the signed envelope here instead of stdout')
    .option('--revision <n>', "set the release's revision (must be higher than any the agent accepted)", wholeNumber(1))
    .option('--ttl <duration>', 'set issuedAt to now and expiresAt to now + this (e.g. 168h); default: the file\'s own issuedAt/expiresAt', durationArg)
    .action(async (file, o) => {
      const { io } = ctx;
      const [{ default: YAML }, { z }, { importPrivateKeyPem, signRelease }] = await Promise.all([import('yaml'), import('zod'), import('../protocol/signing.ts')]);
      let input: Record<string, unknown>;
      try {
        const parsed: unknown = YAML.parse(readFileSync(file, 'utf8'));
        if (typeof parsed !== 'object' || parsed === null || Array.isArray(parsed)) throw new Error('the file does not hold a release (a YAML/JSON mapping)');
        input = parsed as Record<string, unknown>;
      } catch (err) {
        io.err(`fleetlet sign: cannot read ${file}: ${(err as Error).message}\n`);
        return ctx.exit(ExitCode.Failed);
      }
      if (o.revision !== undefined) input.revision = o.revision;
      if (o.ttl !== undefined) {
        const now = Date.now();
        input.issuedAt = new Date(now).toISOString();
        input.expiresAt = new Date(now + o.ttl).toISOString();
      }
      let envelope;
      try {
        envelope = signRelease(input as Parameters<typeof signRelease>[0], importPrivateKeyPem(readFileSync(o.key, 'utf8')));
      } catch (err) {
        if (err instanceof z.ZodError) io.err(`fleetlet sign: ${file} is not a valid release:\n${z.prettifyError(err)}\n`);
        else io.err(`fleetlet sign: ${(err as Error).message}\n`);
        return ctx.exit(ExitCode.Failed);
      }
      const text = `${JSON.stringify(envelope)}\n`;
      if (o.out) writeFileSync(o.out, text);
      else io.out(text);
      ctx.exit(ExitCode.Ok);
    });
}
