import { PassThrough, Readable } from 'node:stream';
import { CliError, CliErrorCode } from './exit-codes';
import {
  HiddenLineEditor,
  PasswordPrompt,
  type TerminalInput,
} from './password-prompt';

function typed(...chunks: string[]) {
  const editor = new HiddenLineEditor();
  const states = chunks.map((chunk) => editor.feed(chunk));
  return { editor, state: states[states.length - 1] };
}

/** A stand-in for a terminal's stdin that records raw-mode switches. */
class FakeTerminal extends PassThrough implements TerminalInput {
  isTTY = true;
  isRaw = false;
  modes: boolean[] = [];
  setRawMode(mode: boolean) {
    this.isRaw = mode;
    this.modes.push(mode);
    return this;
  }
}

async function rejection(promise: Promise<unknown>): Promise<CliError> {
  try {
    await promise;
  } catch (error) {
    if (error instanceof CliError) return error;
    throw error;
  }
  throw new Error('expected a CliError');
}

describe(HiddenLineEditor.name, () => {
  it('should end the line at Enter, as CR or LF', () => {
    expect(typed('secret\r')).toMatchObject({
      state: 'done',
      editor: { value: 'secret' },
    });
    expect(typed('sec', 'ret\n').editor.value).toBe('secret');
  });

  it('should keep typing until Enter', () => {
    expect(typed('secr').state).toBe('typing');
  });

  it('should erase the last character with Backspace or Delete, whole code points', () => {
    expect(typed('secrex\x7ft\r').editor.value).toBe('secret');
    expect(typed('secrex\bt\r').editor.value).toBe('secret');
    expect(typed('pass🔑\x7fword\r').editor.value).toBe('password');
    expect(typed('\x7f\x7fok\r').editor.value).toBe('ok');
  });

  it('should clear the line with Ctrl-U', () => {
    expect(typed('wrong\x15right\r').editor.value).toBe('right');
  });

  it('should drop escape sequences and control characters', () => {
    expect(typed('se\x1b[Dcr\x1bOAet\t\x00\r').editor.value).toBe('secret');
  });

  it('should stop at Ctrl-C, keeping nothing typed after it', () => {
    expect(typed('half\x03more\r').state).toBe('interrupted');
  });

  it('should end input at Ctrl-D on an empty line only', () => {
    expect(typed('\x04').state).toBe('ended');
    expect(typed('ab\x04c\r').editor.value).toBe('abc');
  });

  it('should keep what was typed after Enter for the next prompt', () => {
    const { editor } = typed('first\r\nsecond\r');
    expect(editor.value).toBe('first');
    expect(editor.rest).toBe('second\r');
  });
});

describe(PasswordPrompt.name, () => {
  it('should read one line from a piped stdin, without its line end', async () => {
    const prompt = new PasswordPrompt(
      Readable.from(['correct ', 'horse\r\nsecond line\n']),
      new PassThrough(),
    );
    expect(prompt.interactive).toBe(false);
    await expect(prompt.ask('Password: ')).resolves.toBe('correct horse');
  });

  it('should take a last line without a line end', async () => {
    const prompt = new PasswordPrompt(
      Readable.from(['correct horse']),
      new PassThrough(),
    );
    await expect(prompt.ask('Password: ')).resolves.toBe('correct horse');
  });

  it('should refuse an empty stdin as INPUT', async () => {
    const prompt = new PasswordPrompt(Readable.from([]), new PassThrough());
    expect((await rejection(prompt.ask('Password: '))).code).toBe(
      CliErrorCode.INPUT,
    );
  });

  it('should switch the terminal to raw mode before the prompt and back after Enter', async () => {
    const terminal = new FakeTerminal();
    const output = new PassThrough();
    let shown = '';
    let rawAtPrompt: boolean | undefined;
    output.on('data', (chunk: Buffer) => {
      rawAtPrompt ??= terminal.isRaw;
      shown += chunk.toString();
    });
    const prompt = new PasswordPrompt(terminal, output);
    const answer = prompt.ask('Password: ');
    terminal.write('secret\r');
    await expect(answer).resolves.toBe('secret');
    expect(rawAtPrompt).toBe(true);
    expect(terminal.modes).toEqual([true, false]);
    expect(shown).toBe('Password: \n');
  });

  it('should give the typed-ahead answer to the next prompt', async () => {
    const terminal = new FakeTerminal();
    const prompt = new PasswordPrompt(terminal, new PassThrough());
    const first = prompt.ask('Password: ');
    terminal.write('one\rtwo\r');
    await expect(first).resolves.toBe('one');
    await expect(prompt.ask('Repeat password: ')).resolves.toBe('two');
  });

  it('should restore the terminal and reject INTERRUPTED on Ctrl-C', async () => {
    const terminal = new FakeTerminal();
    const prompt = new PasswordPrompt(terminal, new PassThrough());
    const answer = prompt.ask('Password: ');
    terminal.write('abc\x03');
    expect((await rejection(answer)).code).toBe(CliErrorCode.INTERRUPTED);
    expect(terminal.modes).toEqual([true, false]);
    expect(terminal.isRaw).toBe(false);
  });
});
