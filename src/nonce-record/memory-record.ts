import { hash, randomBytes } from 'node:crypto';

const WORDS = 4; // 128-bit fingerprints, as four 32-bit words
const INITIAL_SLOTS = 1024;

/**
 * An open-addressing set of 128-bit fingerprints in one Int32Array (linear probing, load ≤ 1/2):
 * 16 bytes a slot, so 32–64 bytes per fingerprint held, and nothing for the garbage collector to
 * trace. A zero first word marks an empty slot; fingerprints always have its low bit set.
 */
export class FingerprintTable {
  private slots = new Int32Array(INITIAL_SLOTS * WORDS);
  private mask = INITIAL_SLOTS - 1;
  size = 0;

  get bytes(): number {
    return this.slots.byteLength;
  }

  has(fp: Int32Array): boolean {
    return this.find(this.slots, this.mask, fp) < 0;
  }

  /** Adds the fingerprint; false when it was already there. */
  add(fp: Int32Array): boolean {
    const at = this.find(this.slots, this.mask, fp);
    if (at < 0) return false;
    this.slots.set(fp, at);
    this.size += 1;
    if (this.size * 2 > this.mask + 1) this.grow();
    return true;
  }

  /** The index of the fingerprint's words, negated minus one; else the empty slot it would take. */
  private find(slots: Int32Array, mask: number, fp: Int32Array): number {
    for (let slot = fp[1] & mask; ; slot = (slot + 1) & mask) {
      const at = slot * WORDS;
      const first = slots[at];
      if (first === 0) return at;
      if (
        first === fp[0] &&
        slots[at + 1] === fp[1] &&
        slots[at + 2] === fp[2] &&
        slots[at + 3] === fp[3]
      ) {
        return -at - 1;
      }
    }
  }

  private grow(): void {
    const old = this.slots;
    const capacity = (this.mask + 1) * 2;
    this.slots = new Int32Array(capacity * WORDS);
    this.mask = capacity - 1;
    for (let at = 0; at < old.length; at += WORDS) {
      if (old[at] === 0) continue;
      const fp = old.subarray(at, at + WORDS);
      this.slots.set(fp, this.find(this.slots, this.mask, fp));
    }
  }
}

/**
 * The accepted (kid, nonce) pairs of one process, held as keyed 128-bit fingerprints for as long as
 * their message could still pass the freshness check (until ts + window), and no longer.
 *
 * Pairs are filed by when they expire, in generations a quarter of the window wide; a generation is
 * dropped whole once the last of its pairs has expired, so the record holds at most the window's
 * pairs plus a quarter. The fingerprint is SHA-256 under a random per-process salt, truncated to
 * 128 bits (127 of them free): two different pairs share one with probability 2^-127, so among n
 * pairs held a new pair is wrongly refused with probability about n·2^-127 (10^-31 for n = 10^7).
 * The salt keeps anyone from choosing nonces that collide on purpose.
 *
 * `accept` checks and inserts in one synchronous call: of N copies arriving at once, exactly one
 * is accepted, since nothing else runs in between.
 */
export class MemoryRecord {
  private readonly generations = new Map<number, FingerprintTable>();
  private readonly generationMs: number;
  private readonly salt = randomBytes(16).toString('base64');
  private readonly fingerprint = new Int32Array(WORDS);
  private nextExpiry = Infinity;

  constructor(private readonly windowMs: number) {
    this.generationMs = Math.max(Math.ceil(windowMs / 4), 1);
  }

  /** Records the pair of a message dated `ts`; false when it was recorded before. */
  accept(kid: string, nonce: string, ts: number, now: number): boolean {
    if (now >= this.nextExpiry) this.expire(now);
    const fp = this.fingerprintOf(kid, nonce);
    const generation = Math.floor((ts + this.windowMs) / this.generationMs);
    let target: FingerprintTable | undefined;
    for (const [index, table] of this.generations) {
      if (index === generation) target = table;
      else if (table.has(fp)) return false;
    }
    if (!target) {
      target = new FingerprintTable();
      this.generations.set(generation, target);
      this.nextExpiry = Math.min(
        this.nextExpiry,
        (generation + 1) * this.generationMs,
      );
    }
    return target.add(fp);
  }

  /** Pairs held now, expired generations not yet dropped included. */
  get size(): number {
    let size = 0;
    for (const table of this.generations.values()) size += table.size;
    return size;
  }

  /** Bytes of fingerprint tables held. */
  get bytes(): number {
    let bytes = 0;
    for (const table of this.generations.values()) bytes += table.bytes;
    return bytes;
  }

  /** Drops every generation whose pairs have all expired (ts + window < now). */
  private expire(now: number): void {
    this.nextExpiry = Infinity;
    for (const index of this.generations.keys()) {
      const end = (index + 1) * this.generationMs;
      if (end <= now) this.generations.delete(index);
      else this.nextExpiry = Math.min(this.nextExpiry, end);
    }
  }

  private fingerprintOf(kid: string, nonce: string): Int32Array {
    // kid and nonce never contain "\n", so the hashed text names one pair only.
    const digest = hash('sha256', `${this.salt}\n${kid}\n${nonce}`, 'buffer');
    const fp = this.fingerprint;
    fp[0] = digest.readInt32LE(0) | 1;
    fp[1] = digest.readInt32LE(4);
    fp[2] = digest.readInt32LE(8);
    fp[3] = digest.readInt32LE(12);
    return fp;
  }
}
