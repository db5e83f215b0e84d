import { NatsClientProxy } from './nats-client.proxy';

/** A NATS message as the subscription delivers it: the service's packet as JSON. */
function natsMessage(packet: Record<string, unknown>) {
  const data = new TextEncoder().encode(JSON.stringify(packet));
  return { data, headers: undefined, json: () => packet };
}

const PACKET = { id: 'p1', pattern: 'system.ping', data: { nonce: 'n' } };

function handlerWith(
  test?: (pattern: string, request: unknown, reply: unknown) => boolean,
) {
  const proxy = new NatsClientProxy('pai.', 'nats://127.0.0.1:4222');
  if (test) proxy.screenReplies(test);
  const delivered: unknown[] = [];
  const handle = proxy.createSubscriptionHandler(PACKET as never, (packet) => {
    delivered.push(packet);
  });
  return { handle, delivered };
}

describe(NatsClientProxy.name, () => {
  const genuine = { ok: true, ts: 1, payload: {}, mac: 'good' };
  const forged = {
    ok: false,
    ts: 1,
    error: { code: 'MAC_INVALID' },
    mac: null,
  };
  const isGenuine = (_p: string, _r: unknown, reply: unknown) =>
    (reply as { mac: unknown }).mac === 'good';

  it('should drop a reply that fails the test and deliver the genuine one after it', async () => {
    const { handle, delivered } = handlerWith(isGenuine);

    await handle(
      null,
      natsMessage({ id: 'p1', err: forged, isDisposed: true }),
    );
    await handle(
      null,
      natsMessage({ id: 'p1', response: genuine, isDisposed: true }),
    );

    expect(delivered).toEqual([
      { err: undefined, response: genuine, isDisposed: true },
    ]);
  });

  it('should hand the test the bare pattern and the request envelope', async () => {
    const test = jest.fn(isGenuine);
    const { handle } = handlerWith(test);

    await handle(
      null,
      natsMessage({ id: 'p1', response: genuine, isDisposed: true }),
    );

    expect(test).toHaveBeenCalledWith('system.ping', PACKET.data, genuine);
  });

  it('should deliver the first reply, forged or not, when no test is installed', async () => {
    const { handle, delivered } = handlerWith();

    await handle(
      null,
      natsMessage({ id: 'p1', err: forged, isDisposed: true }),
    );

    expect(delivered).toEqual([
      { err: forged, response: undefined, isDisposed: true },
    ]);
  });
});
