// The one logger tests give what they build: silent unless FLEETLET_TEST_LOG
// names a level (e.g. FLEETLET_TEST_LOG=debug node --test …).
import { pino, type Logger } from 'pino';

export function testLogger(): Logger {
  return pino({ level: process.env.FLEETLET_TEST_LOG ?? 'silent' });
}
