// `fleetlet keygen` and `fleetlet sign`: the release key tools a hub
// operator needs, also for delivering a release without a hub link.
import { readFileSync, writeFileSync } from 'node:fs';
import { parseArgs } from 'node:util';
import YAML from 'yaml';
import { exportPrivateKeyPem, exportPublicKeyPem, generateReleaseKey, importPrivateKeyPem, signRelease } from '../protocol/signing.ts';

export function keysCommand(cmd: 'keygen' | 'sign', argv: string[]): number {
  if (cmd === 'keygen') {
    const { values } = parseArgs({ args: argv, options: { out: { type: 'string', default: 'release-key' } } });
    const pair = generateReleaseKey();
    writeFileSync(`${values.out}.pem`, exportPrivateKeyPem(pair.privateKey), { mode: 0o600 });
    writeFileSync(`${values.out}.pub.pem`, exportPublicKeyPem(pair.publicKey));
    process.stdout.write(`wrote ${values.out}.pem (keep secret, for the hub) and ${values.out}.pub.pem (for agents)\n`);
    return 0;
  }
  const { values, positionals } = parseArgs({ args: argv, allowPositionals: true, options: { key: { type: 'string' }, out: { type: 'string' } } });
  const file = positionals[0];
  if (!file || !values.key) {
    process.stderr.write('usage: fleetlet sign --key <private.pem> [--out signed.json] <release.yaml|json>\n');
    return 2;
  }
  const input: unknown = YAML.parse(readFileSync(file, 'utf8'));
  const envelope = signRelease(input as Parameters<typeof signRelease>[0], importPrivateKeyPem(readFileSync(values.key, 'utf8')));
  const text = `${JSON.stringify(envelope)}\n`;
  if (values.out) writeFileSync(values.out, text);
  else process.stdout.write(text);
  return 0;
}
