// Runs the shell blocks of a Markdown document, in order, the way a reader
// pastes them into one terminal: each block runs in bash with `set -euo
// pipefail`, in one working directory, and what a block exports is there for
// the next. Info strings after `sh` say how a block runs:
//   ```sh             run; a non-zero exit fails the caller
//   ```sh background  started and left running ("in a second terminal"); stopped by stop()
//   ```sh skip        not run here (the caller names which and why)
import { spawn, type ChildProcess } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';

export interface DocBlock {
  mode: 'run' | 'background' | 'skip';
  code: string;
  /** 1-based line of the block's first code line in the document. */
  line: number;
}

export function shellBlocks(markdown: string): DocBlock[] {
  const blocks: DocBlock[] = [];
  const re = /^```sh(?:[ \t]+(\w+))?[ \t]*\n([\s\S]*?)^```[ \t]*$/gm;
  for (const m of markdown.matchAll(re)) {
    const mode = (m[1] ?? 'run') as DocBlock['mode'];
    if (!['run', 'background', 'skip'].includes(mode)) throw new Error(`unknown shell block mode "${m[1]}"`);
    blocks.push({ mode, code: m[2]!, line: markdown.slice(0, m.index).split('\n').length + 1 });
  }
  return blocks;
}

export interface DocShellOptions {
  cwd: string;
  env: Record<string, string>;
  /** Text replacements applied to every block before it runs (addresses and ports of this machine). */
  substitutions?: [string, string][];
}

export class DocShell {
  private readonly o: DocShellOptions;
  private readonly state: string;
  private readonly background: ChildProcess[] = [];

  constructor(o: DocShellOptions) {
    this.o = o;
    this.state = join(o.cwd, '.doc-shell-state');
    writeFileSync(this.state, '');
  }

  private script(code: string, tail: string): string {
    let text = code;
    for (const [from, to] of this.o.substitutions ?? []) text = text.split(from).join(to);
    return `source ${JSON.stringify(this.state)}\nset -euo pipefail\n${text}\n${tail}`;
  }

  run(block: DocBlock, timeoutMs = 300_000): Promise<{ code: number; stdout: string; stderr: string }> {
    return new Promise((resolve, reject) => {
      const child = spawn('bash', ['-c', this.script(block.code, `declare -px > ${JSON.stringify(this.state)}`)], { cwd: this.o.cwd, env: this.o.env, detached: true });
      let stdout = '';
      let stderr = '';
      child.stdout.setEncoding('utf8').on('data', (c: string) => (stdout += c));
      child.stderr.setEncoding('utf8').on('data', (c: string) => (stderr += c));
      const timer = setTimeout(() => {
        stderr += `\n(killed after ${timeoutMs} ms)`;
        kill(child, 'SIGKILL');
      }, timeoutMs);
      child.on('error', reject);
      child.on('close', (code) => {
        clearTimeout(timer);
        resolve({ code: code ?? -1, stdout, stderr });
      });
    });
  }

  /** Starts a block and leaves it running; its output is collected for a failure message. */
  start(block: DocBlock): { output: () => string } {
    const child = spawn('bash', ['-c', this.script(block.code, '')], { cwd: this.o.cwd, env: this.o.env, detached: true });
    let out = '';
    child.stdout?.setEncoding('utf8').on('data', (c: string) => (out = (out + c).slice(-8000)));
    child.stderr?.setEncoding('utf8').on('data', (c: string) => (out = (out + c).slice(-8000)));
    this.background.push(child);
    return { output: () => out };
  }

  /** Stops every background block (its whole process group, by pid), SIGTERM first. */
  async stop(): Promise<void> {
    for (const c of this.background) kill(c, 'SIGTERM');
    const deadline = Date.now() + 10_000;
    while (this.background.some((c) => c.exitCode === null && c.signalCode === null) && Date.now() < deadline) await sleep(100);
    for (const c of this.background) if (c.exitCode === null && c.signalCode === null) kill(c, 'SIGKILL');
  }
}

function kill(child: ChildProcess, signal: NodeJS.Signals): void {
  if (!child.pid) return;
  try {
    process.kill(-child.pid, signal);
  } catch {
    // Already gone.
  }
}
