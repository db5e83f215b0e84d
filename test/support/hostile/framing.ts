import { isObject } from './oracle';

/** What a conforming service must make of a byte stream (PROTOCOL.md 1, Nest's framing). */
export interface FrameVerdict {
  /** Requests it must deliver, in order, before anything else. */
  messages: Record<string, unknown>[];
  /** The stream breaks the framing: the connection must be closed. */
  broken: boolean;
  /** The spec does not say whether the stream is broken (either outcome is right). */
  open: boolean;
  /** Ids of requests whose pattern is not a string: answered by an unsigned BAD_REQUEST. */
  refusedIds: (string | number)[];
}

/**
 * An independent reading of the framing: `<length>#<json>`, the length a decimal count of UTF-16
 * code units at most `max`, the JSON an object. One whose pattern is not a string is not delivered:
 * a request (a string or number id) gets an unsigned BAD_REQUEST, an event is dropped, and any
 * other id breaks the framing.
 */
export function readFrames(text: string, max: number): FrameVerdict {
  const messages: Record<string, unknown>[] = [];
  const refusedIds: (string | number)[] = [];
  // A length with a leading zero ("026") is not defined by the spec: closing there is as right
  // as reading it as 26. From there on, only a prefix of what a lenient reading finds is required.
  let lenient = false;
  const verdict = (broken: boolean, open = false): FrameVerdict => ({
    messages,
    broken,
    open: open || lenient,
    refusedIds,
  });
  let i = 0;
  while (i < text.length) {
    const hash = text.indexOf('#', i);
    const header = hash < 0 ? text.slice(i) : text.slice(i, hash);
    if (!/^[0-9]*$/.test(header)) return verdict(true);
    if (hash < 0) {
      // A partial header: broken already if it cannot end as a length within the limit.
      const tooLong =
        header.length > String(max).length && !header.startsWith('0');
      return verdict(tooLong, tooLong);
    }
    if (header === '') return verdict(true);
    if (header.length > 1 && header.startsWith('0')) lenient = true;
    const length = Number(header);
    if (length > max) return verdict(true);
    const start = hash + 1;
    if (text.length < start + length) return verdict(false);
    let message: unknown;
    try {
      message = JSON.parse(text.slice(start, start + length));
    } catch {
      return verdict(true);
    }
    if (!isObject(message)) return verdict(true);
    if (typeof message.pattern === 'string') messages.push(message);
    else if (typeof message.id === 'string' || typeof message.id === 'number')
      refusedIds.push(message.id);
    else if (message.id !== undefined) return verdict(true);
    i = start + length;
  }
  return verdict(false);
}
