import { ErrorCode, wireMessage } from './error-code';

describe(wireMessage.name, () => {
  it.each(Object.values(ErrorCode))(
    'should give %s a non-empty message',
    (code) => {
      const message = wireMessage(code);

      expect(typeof message).toBe('string');
      expect(message.trim()).not.toBe('');
    },
  );

  it('should give every code its own message', () => {
    const messages = Object.values(ErrorCode).map(wireMessage);

    expect(new Set(messages).size).toBe(messages.length);
  });
});
