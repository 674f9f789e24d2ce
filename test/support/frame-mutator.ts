// Turns valid frames into broken ones: byte damage and structural damage,
// driven by a seeded PRNG so a failing frame can be replayed.

const nasty: unknown[] = [null, true, 0, -1, 1.5, 2 ** 53, -(2 ** 63), 1e308, '', 'x'.repeat(5000), '\u0000', '__proto__', [], {}, [[[[]]]], { constructor: { prototype: 1 } }];
const types = ['hello', 'reports', 'heartbeat', 'register', 'welcome', 'release', 'ack', 'registration', 'deregister', 'error', 'HELLO', 'toString', '__proto__'];

export class FrameMutator {
  readonly #r: () => number;
  constructor(random: () => number) {
    this.#r = random;
  }

  #int(n: number): number {
    return Math.floor(this.#r() * n);
  }

  #pick<T>(xs: readonly T[]): T {
    return xs[this.#int(xs.length)] as T;
  }

  /** A fresh copy each time, so mutations never alias (and never form a cycle). */
  #nasty(): unknown {
    return structuredClone(this.#pick(nasty));
  }

  mutate(seed: string): string | Buffer {
    return this.#r() < 0.5 ? this.#bytes(Buffer.from(seed, 'utf8')) : this.#structure(seed);
  }

  #bytes(buf: Buffer): Buffer {
    const b = Buffer.from(buf);
    const rounds = 1 + this.#int(4);
    let out = b;
    for (let i = 0; i < rounds; i++) {
      const at = this.#int(out.length + 1);
      switch (this.#int(6)) {
        case 0:
          if (out.length > 0) {
            const i = Math.min(at, out.length - 1);
            out[i] = (out[i] ?? 0) ^ (1 << this.#int(8));
          }
          break;
        case 1:
          out = out.subarray(0, at);
          break;
        case 2:
          out = Buffer.concat([out.subarray(0, at), Buffer.from(Array.from({ length: 1 + this.#int(8) }, () => this.#int(256))), out.subarray(at)]);
          break;
        case 3:
          out = Buffer.concat([out.subarray(0, at), out.subarray(at + 1 + this.#int(10))]);
          break;
        case 4:
          out = Buffer.concat([out.subarray(0, at), out.subarray(this.#int(out.length)), out.subarray(at)]);
          break;
        default:
          out = Buffer.concat([out.subarray(0, at), Buffer.from(this.#pick(['"', '{', '}', '[', ']', ',', ':', '\\u', '\u00e9', '\ud800', 'null']), 'utf8'), out.subarray(at)]);
      }
    }
    return out;
  }

  #structure(seed: string): string {
    const root = JSON.parse(seed) as Record<string, unknown>;
    const rounds = 1 + this.#int(3);
    for (let i = 0; i < rounds; i++) {
      const [parent, key] = this.#randomSlot(root);
      if (parent === undefined) break;
      switch (this.#int(6)) {
        case 0:
          delete (parent as Record<string, unknown>)[key];
          break;
        case 1:
          (parent as Record<string, unknown>)[key] = this.#nasty();
          break;
        case 2:
          (parent as Record<string, unknown>)[`${key}${this.#pick(['_', 'X', ''])}extra`] = this.#nasty();
          break;
        case 3:
          root.type = this.#pick(types);
          break;
        case 4:
          root.protocolVersion = this.#pick([0, 1, 2, 3, -1, 1.5, '1', null]);
          break;
        default: {
          const v = (parent as Record<string, unknown>)[key];
          if (typeof v === 'number') (parent as Record<string, unknown>)[key] = v + this.#pick([-1, 1, -v, 1e9]);
          else if (typeof v === 'string') (parent as Record<string, unknown>)[key] = v + this.#pick(['!', ' ', 'Z', '\u0000']);
          else if (Array.isArray(v)) v.push(...v.slice(0, 1 + this.#int(3)));
        }
      }
    }
    return JSON.stringify(root);
  }

  /** A random (container, key) inside the value, walking down from the root. */
  #randomSlot(root: Record<string, unknown>): [object | undefined, string] {
    let container: object = root;
    for (let depth = 0; depth < 6; depth++) {
      const keys = Object.keys(container);
      if (keys.length === 0) return [container, 'added'];
      const key = this.#pick(keys);
      const child = (container as Record<string, unknown>)[key];
      if (typeof child !== 'object' || child === null || this.#r() < 0.35) return [container, key];
      container = child;
    }
    return [container, this.#pick(Object.keys(container).length ? Object.keys(container) : ['added'])];
  }
}
