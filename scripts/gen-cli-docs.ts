// Writes docs/cli.md from the CLI's own help, so the page and `--help` cannot
// disagree; a unit test fails when the committed file is stale: run
//   node_modules/.bin/node scripts/gen-cli-docs.ts
import { writeFileSync } from 'node:fs';
import type { Command } from '@commander-js/extra-typings';
import { allCommands, exitCodeHelp } from '../src/cli/cli-support.ts';
import { buildProgram } from '../src/cli/main.ts';

export const CLI_DOCS_PATH = new URL('../docs/cli.md', import.meta.url);

const pathOf = (c: Command): string => {
  const names: string[] = [];
  for (let x: Command | null = c; x; x = x.parent as Command | null) names.unshift(x.name());
  return names.join(' ');
};

export function generateCliDocs(): string {
  let help = '';
  const io = { out: (s: string) => (help += s), err: (s: string) => (help += s), env: {} };
  const program = buildProgram(() => {}, { io, helpWidth: 100 });
  const sections = allCommands(program).map((c) => {
    help = '';
    c.outputHelp();
    return `## ${pathOf(c)}\n\n\`\`\`text\n${help.trimEnd()}\n\`\`\`\n`;
  });
  return `# fleetlet command line

Generated from the CLI's own help by \`scripts/gen-cli-docs.ts\`; a unit test
fails when this page and \`--help\` disagree. Every command and subcommand
answers \`--help\`; a wrong flag or a missing argument prints what is wrong
and exits 2.

## Exit codes

The same for every command:

\`\`\`text
${exitCodeHelp}
\`\`\`

\`fleetlet rollout status <name> --watch\` returns as soon as the rollout
settles (Succeeded, Completed, Paused or Cancelled), so a script waits with
it and branches on 0 or 3. \`fleetlet agent --exit-when-done\` returns 0 once
the desired release is installed, 3 once it rolled back or failed, or at once
when its \`--release-file\` is refused.

## Shell completion

\`\`\`sh
source <(fleetlet completion bash)    # bash; or save it under /etc/bash_completion.d/fleetlet
source <(fleetlet completion zsh)     # zsh
\`\`\`

## Output

Read commands take \`--json\` and print the hub's (or the journal's) JSON
instead of text. Output into a pipe that closes early (\`fleetlet status |
head\`) ends quietly with the command's exit code.

${sections.join('\n')}`;
}

if (import.meta.main) {
  writeFileSync(CLI_DOCS_PATH, generateCliDocs());
  console.log(`wrote ${CLI_DOCS_PATH.pathname}`);
}
