// A state is always shown as a symbol and a word, and colour only adds to
// them: nobody has to tell red from green to read the fleet.

const STATES: Record<string, { symbol: string; label: string; tone: string }> = {
  Succeeded: { symbol: '✔', label: 'Succeeded', tone: 'ok' },
  InProgress: { symbol: '◔', label: 'In progress', tone: 'busy' },
  Progressing: { symbol: '▶', label: 'Progressing', tone: 'busy' },
  Failed: { symbol: '✖', label: 'Failed', tone: 'bad' },
  TimedOut: { symbol: '✖', label: 'Timed out', tone: 'bad' },
  RolledBack: { symbol: '↺', label: 'Rolled back', tone: 'warn' },
  PendingRegistration: { symbol: '✉', label: 'Pending registration', tone: 'wait' },
  Pending: { symbol: '✉', label: 'Pending', tone: 'wait' },
  Unknown: { symbol: '?', label: 'Unknown (offline)', tone: 'unknown' },
  NoRelease: { symbol: '–', label: 'No release yet', tone: 'none' },
  Paused: { symbol: '‖', label: 'Paused', tone: 'warn' },
  Completed: { symbol: '✔', label: 'Completed', tone: 'ok' },
  Cancelled: { symbol: '⊘', label: 'Cancelled', tone: 'none' },
  ToApply: { symbol: '○', label: 'To apply', tone: 'none' },
  Skipped: { symbol: '↷', label: 'Skipped', tone: 'unknown' },
  Active: { symbol: '▶', label: 'Active', tone: 'busy' },
  Done: { symbol: '✔', label: 'Done', tone: 'ok' },
  /** A group that ended with failed clusters: not a green tick (the rollout pages' own word, not the hub's). */
  DoneWithFailures: { symbol: '✖', label: 'Done, with failures', tone: 'bad' },
  Accepted: { symbol: '✔', label: 'Accepted', tone: 'ok' },
  WaitingForWindow: { symbol: '◷', label: 'Waiting for window', tone: 'wait' },
  RollingBack: { symbol: '↺', label: 'Rolling back', tone: 'warn' },
  Upgrading: { symbol: '▲', label: 'Upgrading', tone: 'busy' },
  Verifying: { symbol: '◔', label: 'Verifying', tone: 'busy' },
  Soaking: { symbol: '◑', label: 'Soaking', tone: 'busy' },
  PreflightChecking: { symbol: '☑', label: 'Pre-flight checks', tone: 'busy' },
};

/** Chart colours by tone: the same hues as the badges, readable on white. */
export const TONE_COLOURS: Record<string, string> = {
  ok: '#1b7f3b',
  busy: '#1d5fbf',
  bad: '#b3261e',
  warn: '#9a5b00',
  wait: '#6b4fbb',
  unknown: '#5f6368',
  none: '#9aa0a6',
};

export function stateInfo(state: string): { symbol: string; label: string; tone: string } {
  return STATES[state] ?? { symbol: '•', label: state, tone: 'none' };
}

/** Phases of one attempt, told apart in the timeline (each also named in its legend and table). */
const PHASE_COLOURS: Record<string, string> = {
  // Beside Failed in the rollout's group chart: a darker red, so the two read apart (the legend names both).
  TimedOut: '#6e1410',
  WaitingForWindow: '#6b4fbb',
  PreflightChecking: '#00838f',
  Upgrading: '#1d5fbf',
  Verifying: '#5e8fd6',
  Soaking: '#2e7d32',
  RollingBack: '#b3261e',
};

export function phaseColourOf(phase: string): string {
  return PHASE_COLOURS[phase] ?? colourOf(phase);
}

export function colourOf(state: string): string {
  return TONE_COLOURS[stateInfo(state).tone] ?? '#9aa0a6';
}

export function Status({ state, detail }: { state: string; detail?: string | null }) {
  const s = stateInfo(state);
  return (
    <span class={`badge tone-${s.tone}`} data-state={state}>
      <span aria-hidden="true" class="symbol">{s.symbol}</span> {s.label}
      {detail ? <span class="detail"> · {detail}</span> : null}
    </span>
  );
}
