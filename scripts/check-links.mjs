// Every relative link in README.md and docs/**/*.md names a file or folder of this repository,
// and every `#anchor` a heading of the page it points to (GitHub's heading ids). Run by
// `npm run lint`; prints each broken link as file:line and exits 1.
//
//   node scripts/check-links.mjs
import { existsSync, readFileSync, readdirSync, statSync } from 'node:fs';
import { dirname, join, relative, resolve, sep } from 'node:path';
import process from 'node:process';
import { fileURLToPath } from 'node:url';

const root = resolve(dirname(fileURLToPath(import.meta.url)), '..');

function markdownFiles() {
  const files = ['README.md'];
  const walk = (dir) => {
    for (const entry of readdirSync(join(root, dir), { withFileTypes: true })) {
      const path = `${dir}/${entry.name}`;
      if (entry.isDirectory()) walk(path);
      else if (entry.name.endsWith('.md')) files.push(path);
    }
  };
  walk('docs');
  return files;
}

/** The page's lines outside fenced code blocks, with their numbers. */
function proseLines(text) {
  const lines = [];
  let fence;
  text.split('\n').forEach((line, index) => {
    const marker = /^\s*(```+|~~~+)/.exec(line);
    if (marker) {
      if (!fence) fence = marker[1][0];
      else if (marker[1][0] === fence) fence = undefined;
      return;
    }
    if (!fence) lines.push({ line, number: index + 1 });
  });
  return lines;
}

/** GitHub's id for a heading: lower case, punctuation dropped, spaces as hyphens. */
function slug(heading) {
  return heading
    .replace(/\[([^\]]*)\]\([^)]*\)/g, '$1')
    .toLowerCase()
    .replace(/[^\p{L}\p{N}\s_-]/gu, '')
    .replace(/\s/g, '-');
}

const anchorsOf = new Map();
function anchors(file) {
  if (!anchorsOf.has(file)) {
    const seen = new Map();
    const ids = new Set();
    for (const { line } of proseLines(readFileSync(join(root, file), 'utf8'))) {
      const heading = /^#{1,6}\s+(.*?)\s*#*\s*$/.exec(line);
      if (!heading) continue;
      const base = slug(heading[1]);
      const count = seen.get(base) ?? 0;
      seen.set(base, count + 1);
      ids.add(count === 0 ? base : `${base}-${count}`);
    }
    anchorsOf.set(file, ids);
  }
  return anchorsOf.get(file);
}

/** Why the link is broken, or undefined when it resolves. */
function problem(file, target) {
  const [path, anchor] = target.split('#', 2);
  const resolved = path === '' ? join(root, file) : resolve(root, dirname(file), path);
  const inRepo = relative(root, resolved).split(sep).join('/');
  if (inRepo.startsWith('../')) return 'points outside the repository';
  if (!existsSync(resolved)) return 'no such file';
  if (anchor === undefined || anchor === '') return undefined;
  if (statSync(resolved).isDirectory() || !inRepo.endsWith('.md')) {
    return 'an anchor on something that is not a Markdown page';
  }
  return anchors(inRepo).has(anchor) ? undefined : `no heading #${anchor} in ${inRepo}`;
}

const broken = [];
for (const file of markdownFiles()) {
  for (const { line, number } of proseLines(readFileSync(join(root, file), 'utf8'))) {
    // Inline code is not a link, even when it looks like one.
    const prose = line.replace(/`[^`]*`/g, '');
    for (const match of prose.matchAll(/\]\(\s*<?([^)\s>]+)>?(?:\s+"[^"]*")?\s*\)/g)) {
      const target = match[1];
      if (/^[a-z][a-z0-9+.-]*:/i.test(target)) continue; // https:, mailto:
      const why = problem(file, decodeURI(target));
      if (why) broken.push(`${file}:${number}: ${target}: ${why}`);
    }
  }
}

if (broken.length > 0) {
  console.error(`${broken.length} broken link(s):\n${broken.join('\n')}`);
  process.exit(1);
}
console.log(`links: ${markdownFiles().length} pages checked, every relative link resolves`);
