// Summarizes a .cpuprofile (node --cpu-prof): self time by function and by package/file.
// node bench/profile-summary.mts bench/profiles/<file>.cpuprofile [top]
import { readFileSync } from 'node:fs';

interface CallFrame {
  functionName: string;
  url: string;
  lineNumber: number;
}
interface Profile {
  nodes: { id: number; callFrame: CallFrame }[];
  samples: number[];
  timeDeltas: number[];
}

const [file, topArg] = process.argv.slice(2);
if (!file) {
  console.error(
    'usage: node bench/profile-summary.mts <file>.cpuprofile [top]',
  );
  process.exit(2);
}
const top = Number(topArg ?? 25);
const profile = JSON.parse(readFileSync(file, 'utf8')) as Profile;
const byId = new Map(profile.nodes.map((node) => [node.id, node]));
const frameOf = (id: number) => byId.get(id)!.callFrame;
const self = new Map<number, number>();
const deltas = profile.timeDeltas;
for (let i = 0; i < profile.samples.length; i += 1) {
  const id = profile.samples[i];
  self.set(id, (self.get(id) ?? 0) + (deltas[i] ?? 0));
}
const all = [...self.values()].reduce((a, b) => a + b, 0);
// Percentages are of busy time: samples where the thread was idle (waiting for I/O) are left out.
let idle = 0;
for (const [id, time] of self) {
  if (frameOf(id).functionName === '(idle)') idle += time;
}
const total = all - idle;
const where = (frame: CallFrame) => {
  const url = frame.url || '(native)';
  const pkg = /node_modules\/((?:@[^/]+\/)?[^/]+)/.exec(url);
  if (pkg) return pkg[1];
  if (url.includes('/dist/src/')) return `pai:${url.split('/dist/src/')[1]}`;
  return url;
};
const byFunction = new Map<string, number>();
const byPlace = new Map<string, number>();
for (const [id, time] of self) {
  const frame = frameOf(id);
  if (frame.functionName === '(idle)') continue;
  const name = `${frame.functionName || '(anonymous)'} ${where(frame)}:${frame.lineNumber + 1}`;
  byFunction.set(name, (byFunction.get(name) ?? 0) + time);
  byPlace.set(where(frame), (byPlace.get(where(frame)) ?? 0) + time);
}
const show = (title: string, map: Map<string, number>) => {
  console.log(`\n${title}`);
  for (const [name, time] of [...map]
    .sort((a, b) => b[1] - a[1])
    .slice(0, top)) {
    console.log(`${((100 * time) / total).toFixed(1).padStart(5)}%  ${name}`);
  }
};
console.log(
  `sampled ${(all / 1000).toFixed(0)} ms, busy ${(total / 1000).toFixed(0)} ms (percentages are of busy time)`,
);
show('self time by package / file', byPlace);
show('self time by function', byFunction);
