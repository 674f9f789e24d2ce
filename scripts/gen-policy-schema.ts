// Writes schema/policy.schema.json, the JSON Schema editors use to check a
// policy file as it is typed (e.g. with a `# yaml-language-server: $schema=`
// comment). Generated from the zod schema so the two cannot disagree; a unit
// test fails when the committed file is stale: run
//   node_modules/.bin/node scripts/gen-policy-schema.ts
import { writeFileSync } from 'node:fs';
import { z } from 'zod';
import { maintenancePolicy } from '../src/protocol/policy.ts';

export const POLICY_SCHEMA_PATH = new URL('../schema/policy.schema.json', import.meta.url);

export function generatePolicySchema(): string {
  // io 'input': describe what a person may write (defaults optional), not the parsed result.
  const schema = z.toJSONSchema(maintenancePolicy, { io: 'input', target: 'draft-2020-12' });
  const doc = {
    $id: 'https://fleetlet.io/schema/policy.schema.json',
    title: 'fleetlet MaintenancePolicy',
    ...schema,
  };
  return `${JSON.stringify(doc, null, 2)}\n`;
}

if (import.meta.main) {
  writeFileSync(POLICY_SCHEMA_PATH, generatePolicySchema());
  console.log(`wrote ${POLICY_SCHEMA_PATH.pathname}`);
}
