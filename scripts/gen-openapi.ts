// Writes docs/openapi.json, the OpenAPI 3 document of the hub's operator API,
// generated from its routes and their zod schemas (src/hub/http-api.ts); the
// hub serves the same document at GET /api/v1/openapi.json, and a unit test
// fails when the committed file is stale: run `npm run gen:openapi`.
import { writeFileSync } from 'node:fs';
import { pino } from 'pino';
import { openApiDocument } from '../src/hub/http-api.ts';

export const OPENAPI_PATH = new URL('../docs/openapi.json', import.meta.url);

export async function generateOpenApi(): Promise<string> {
  return `${JSON.stringify(await openApiDocument(pino({ level: 'silent' })), null, 2)}\n`;
}

if (import.meta.main) {
  writeFileSync(OPENAPI_PATH, await generateOpenApi());
  console.log(`wrote ${OPENAPI_PATH.pathname}`);
}
