import { APPLIES, VARIABLES, type Kind, type Variable } from './variables';

/** Where the reference is written, from the repository's root. */
export const REFERENCE_FILE = 'docs/configuration.md';

/** `1 000 – 86 400 000`: the docs' way of writing a range. */
function grouped(value: number): string {
  return String(value).replace(/\B(?=(\d{3})+(?!\d))/g, ' ');
}

function code(value: string | number): string {
  return `\`${value}\``;
}

/** The rule texts name character classes as the error messages do; the docs set them as code. */
function withCodeClasses(rule: string): string {
  return rule.replace(/\[[^\]]+\]/g, (set) => code(set));
}

function valueOf(kind: Kind): string {
  switch (kind.type) {
    case 'integer':
      return `integer, ${grouped(kind.min)} – ${grouped(kind.max)}`;
    case 'choice': {
      const values = kind.values.map(code);
      return `${values.slice(0, -1).join(', ')} or ${values.at(-1)}`;
    }
    case 'text':
      return withCodeClasses(kind.rule);
    case 'switch':
      return `${code(kind.on)} or anything else`;
    case 'url':
    case 'secret':
      return kind.form;
    case 'file':
      return `a file holding ${kind.form}`;
    case 'directory':
      return 'a directory, absolute or relative to the working directory';
    case 'refused':
      return `none: set ${code(kind.instead)}`;
  }
}

function defaultOf(variable: Variable): string {
  const shown =
    variable.default === undefined ? undefined : code(variable.default);
  return [shown, variable.unset].filter(Boolean).join('; ');
}

function row(name: string, variable: Variable): string {
  const names = [
    code(name) + ('secret' in variable ? ' *secret*' : ''),
    ...('file' in variable ? [`or ${code(`${name}_FILE`)}`] : []),
  ].join('<br>');
  const cells = [
    names,
    valueOf(variable.kind),
    defaultOf(variable),
    variable.meaning,
  ];
  return `| ${cells.map((cell) => cell.replaceAll('|', '\\|')).join(' | ')} |`;
}

/** docs/configuration.md, as the table describes the variables. */
export function configurationReference(): string {
  const entries: [string, Variable][] = Object.entries(VARIABLES);
  const sections = Object.entries(APPLIES).map(([applies, title]) => [
    `## ${title}`,
    '',
    '| variable | value | default | meaning |',
    '| --- | --- | --- | --- |',
    ...entries
      .filter(([, variable]) => variable.applies === applies)
      .map(([name, variable]) => row(name, variable)),
  ]);
  return [
    '# Configuration',
    '',
    '<!-- Generated from src/config/variables.ts by `npm run docs:config`: edit the table there. -->',
    '',
    'The service reads its environment once, at start, into one typed configuration',
    '(`src/config/config.ts`). A bad value stops the start with a message that names the',
    'variable; a value marked *secret* is never echoed in that message nor logged. A variable',
    'with an `_FILE` form can instead be given as a file, the way Docker and Compose hand over',
    'secrets: `NAME_FILE` names a file whose contents (surrounding blanks and the final line',
    'break removed) are the value; setting both `NAME` and `NAME_FILE` is refused.',
    '',
    'A variable is read only where it applies: the TCP settings over TCP, the NATS settings over',
    'NATS, and so on; elsewhere it is ignored, except the TLS files, which are refused over NATS.',
    "The command-line client's own variables are listed by `pai --help`.",
    '',
    ...sections.flatMap((section) => [...section, '']),
  ].join('\n');
}
