// Summarizes a .cpuprofile (node --cpu-prof): self time by function and by package/file.
// node bench/profile-summary.mjs bench/profiles/<file>.cpuprofile [top]
import { readFileSync } from 'node:fs';
import process from 'node:process';

const [file, topArg] = process.argv.slice(2);
const top = Number(topArg ?? 25);
const profile = JSON.parse(readFileSync(file, 'utf8'));
const byId = new Map(profile.nodes.map((node) => [node.id, node]));
const self = new Map();
const deltas = profile.timeDeltas;
for (let i = 0; i < profile.samples.length; i += 1) {
  const id = profile.samples[i];
  self.set(id, (self.get(id) ?? 0) + (deltas[i] ?? 0));
}
const all = [...self.values()].reduce((a, b) => a + b, 0);
// Percentages are of busy time: samples where the thread was idle (waiting for I/O) are left out.
let idle = 0;
for (const [id, time] of self) if (byId.get(id).callFrame.functionName === '(idle)') idle += time;
const total = all - idle;
const where = (frame) => {
  const url = frame.url || '(native)';
  const pkg = url.match(/node_modules\/((?:@[^/]+\/)?[^/]+)/);
  if (pkg) return pkg[1];
  if (url.includes('/dist/src/')) return `pai:${url.split('/dist/src/')[1]}`;
  if (url.startsWith('node:')) return url;
  return url;
};
const byFunction = new Map();
const byPlace = new Map();
for (const [id, time] of self) {
  const frame = byId.get(id).callFrame;
  if (frame.functionName === '(idle)') continue;
  const name = `${frame.functionName || '(anonymous)'} ${where(frame)}:${frame.lineNumber + 1}`;
  byFunction.set(name, (byFunction.get(name) ?? 0) + time);
  byPlace.set(where(frame), (byPlace.get(where(frame)) ?? 0) + time);
}
const show = (title, map) => {
  console.log(`\n${title}`);
  for (const [name, time] of [...map].sort((a, b) => b[1] - a[1]).slice(0, top)) {
    console.log(`${((100 * time) / total).toFixed(1).padStart(5)}%  ${name}`);
  }
};
console.log(`sampled ${(all / 1000).toFixed(0)} ms, busy ${(total / 1000).toFixed(0)} ms (percentages are of busy time)`);
show('self time by package / file', byPlace);
show('self time by function', byFunction);
