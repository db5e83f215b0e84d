import type { Readable, Writable } from 'node:stream';
import { CliError, CliErrorCode } from './exit-codes';

export type EditorState = 'typing' | 'done' | 'interrupted' | 'ended';

// eslint-disable-next-line no-control-regex -- recognising terminal escape sequences is the point
const ESCAPE_SEQUENCE = /^\x1b(?:\[[0-?]*[ -/]*[@-~]|O.|.)?/;

/**
 * The line discipline of a hidden prompt, fed what a terminal in raw mode sends: Enter ends the
 * line, Backspace/Delete removes the last character (a whole code point), Ctrl-U clears, Ctrl-C
 * interrupts, Ctrl-D on an empty line ends input; escape sequences (arrow keys…) and other
 * control characters are dropped, so they never become part of a password.
 */
export class HiddenLineEditor {
  private chars: string[] = [];
  private state: EditorState = 'typing';
  /** What arrived after Enter (typed ahead), for the next prompt. */
  rest = '';

  get value(): string {
    return this.chars.join('');
  }

  feed(input: string): EditorState {
    let index = 0;
    while (this.state === 'typing' && index < input.length) {
      const char = String.fromCodePoint(input.codePointAt(index)!);
      if (char === '\x1b') {
        index += ESCAPE_SEQUENCE.exec(input.slice(index))![0].length;
        continue;
      }
      index += char.length;
      if (char === '\r' || char === '\n') this.state = 'done';
      else if (char === '\x03') this.state = 'interrupted';
      else if (char === '\x04') {
        if (this.chars.length === 0) this.state = 'ended';
      } else if (char === '\x7f' || char === '\b') this.chars.pop();
      else if (char === '\x15') this.chars = [];
      else if (!/\p{Cc}/u.test(char)) this.chars.push(char);
    }
    if (this.state === 'done') {
      // A CR LF pair is one Enter.
      this.rest = input.slice(index).replace(/^\n/, '');
    }
    return this.state;
  }
}

/** The terminal side of stdin: what a tty.ReadStream offers. */
export interface TerminalInput extends Readable {
  isTTY?: boolean;
  isRaw?: boolean;
  setRawMode?(mode: boolean): unknown;
}

const FORWARDED_SIGNALS = ['SIGTERM', 'SIGHUP'] as const;

/**
 * Reads passwords: at a terminal without echo (raw mode, restored on Enter, Ctrl-C, a signal
 * or exit), otherwise as one line of standard input, so `echo "$PW" | pai login alice` works.
 */
export class PasswordPrompt {
  private typedAhead = '';

  constructor(
    private readonly input: TerminalInput,
    private readonly output: Writable,
  ) {}

  get interactive(): boolean {
    return (
      this.input.isTTY === true && typeof this.input.setRawMode === 'function'
    );
  }

  ask(prompt: string): Promise<string> {
    return this.interactive ? this.askHidden(prompt) : this.readLine();
  }

  private askHidden(prompt: string): Promise<string> {
    const input = this.input;
    const wasRaw = input.isRaw === true;
    // Raw mode before the prompt: a key typed as soon as the prompt shows must not echo.
    input.setRawMode!(true);
    const restore = () => void input.setRawMode!(wasRaw);
    const onSignal = (signal: NodeJS.Signals) => {
      restore();
      process.kill(process.pid, signal);
    };
    process.once('exit', restore);
    for (const signal of FORWARDED_SIGNALS) process.once(signal, onSignal);
    this.output.write(prompt);

    const editor = new HiddenLineEditor();
    return new Promise<string>((resolve, reject) => {
      const finish = (state: EditorState) => {
        input.off('data', onData);
        input.pause();
        restore();
        process.off('exit', restore);
        for (const signal of FORWARDED_SIGNALS) process.off(signal, onSignal);
        // The Enter the user pressed was not echoed either.
        this.output.write('\n');
        this.typedAhead = editor.rest;
        if (state === 'done') resolve(editor.value);
        else if (state === 'interrupted') {
          reject(new CliError(CliErrorCode.INTERRUPTED, 'interrupted'));
        } else reject(new CliError(CliErrorCode.INPUT, 'no password entered'));
      };
      const onData = (chunk: Buffer | string) => {
        const state = editor.feed(chunk.toString());
        if (state !== 'typing') finish(state);
      };
      input.setEncoding('utf8');
      input.on('data', onData);
      input.resume();
      if (this.typedAhead !== '') {
        const ahead = this.typedAhead;
        this.typedAhead = '';
        onData(ahead);
      }
    });
  }

  private async readLine(): Promise<string> {
    let text = '';
    let newline = -1;
    this.input.setEncoding('utf8');
    for await (const chunk of this.input) {
      text += chunk as string;
      newline = text.indexOf('\n');
      if (newline >= 0) break;
    }
    const line = (newline >= 0 ? text.slice(0, newline) : text).replace(
      /\r$/,
      '',
    );
    if (line === '') {
      throw new CliError(
        CliErrorCode.INPUT,
        'no password on standard input (expected one line)',
      );
    }
    return line;
  }
}
