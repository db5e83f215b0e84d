import {
  ConnectionTracker,
  type TrackedConnection,
} from './connection-tracker';

/** A connection that records what the tracker asked of it and closes when told to. */
class FakeConnection implements TrackedConnection {
  inFlight = 0;
  ended = false;
  destroyed = false;
  readonly accepted: boolean;

  constructor(
    private readonly tracker: ConnectionTracker,
    private readonly closesOnEnd = true,
    readonly remoteAddress = '10.0.0.1',
  ) {
    this.accepted = tracker.opened(this);
  }

  start(): void {
    this.inFlight += 1;
    this.tracker.requestStarted();
  }

  finish(): void {
    this.inFlight -= 1;
    this.tracker.requestFinished(this);
  }

  end(): void {
    this.ended = true;
    if (this.closesOnEnd) this.tracker.closed(this);
  }

  destroy(): void {
    this.destroyed = true;
    this.tracker.closed(this);
  }
}

describe(ConnectionTracker.name, () => {
  it('should count open connections and requests in flight', () => {
    const tracker = new ConnectionTracker();
    const a = new FakeConnection(tracker);
    const b = new FakeConnection(tracker);
    a.start();
    a.start();
    b.start();
    b.finish();

    expect(tracker.open).toBe(2);
    expect(tracker.inFlight).toBe(2);
    expect(tracker.isDraining).toBe(false);
  });

  it('should close idle connections at once and busy ones after their last reply', async () => {
    const tracker = new ConnectionTracker();
    const idle = new FakeConnection(tracker);
    const busy = new FakeConnection(tracker);
    busy.start();
    busy.start();

    const drained = tracker.drain(10_000);
    expect(idle.ended).toBe(true);
    expect(busy.ended).toBe(false);
    busy.finish();
    expect(busy.ended).toBe(false);
    busy.finish();
    expect(busy.ended).toBe(true);

    await expect(drained).resolves.toMatchObject({
      drained: true,
      abandoned: 0,
    });
    expect(busy.destroyed).toBe(false);
  });

  it('should destroy what is still running at the deadline and report it', async () => {
    const tracker = new ConnectionTracker();
    const stuck = new FakeConnection(tracker);
    stuck.start();

    const result = await tracker.drain(20);

    expect(result).toMatchObject({ drained: false, abandoned: 1 });
    expect(stuck.destroyed).toBe(true);
  });

  it('should count requests as delivered when only the peer is slow to close', async () => {
    const tracker = new ConnectionTracker();
    const lingering = new FakeConnection(tracker, false);

    const result = await tracker.drain(20);

    expect(lingering.ended).toBe(true);
    expect(lingering.destroyed).toBe(true);
    expect(result).toMatchObject({ drained: true, abandoned: 0 });
  });

  it('should end a connection accepted while draining', async () => {
    const tracker = new ConnectionTracker();
    const drained = tracker.drain(1_000);
    const late = new FakeConnection(tracker);

    expect(late.ended).toBe(true);
    await expect(drained).resolves.toMatchObject({ drained: true });
  });

  it('should forget the requests of a connection that closed', async () => {
    const tracker = new ConnectionTracker();
    const gone = new FakeConnection(tracker);
    gone.start();
    gone.destroy();

    expect(tracker.inFlight).toBe(0);
    await expect(tracker.drain(1_000)).resolves.toMatchObject({
      drained: true,
      abandoned: 0,
    });
  });

  describe('per-address cap', () => {
    it('should refuse a connection over the cap for its address, and count it', () => {
      const tracker = new ConnectionTracker(2);
      const first = new FakeConnection(tracker, true, '10.0.0.7');
      const second = new FakeConnection(tracker, true, '10.0.0.7');
      const third = new FakeConnection(tracker, true, '10.0.0.7');

      expect([first.accepted, second.accepted, third.accepted]).toEqual([
        true,
        true,
        false,
      ]);
      expect(tracker.open).toBe(2);
      expect(tracker.refusals.overAddressCap).toBe(1);
    });

    it('should count each address on its own', () => {
      const tracker = new ConnectionTracker(1);
      new FakeConnection(tracker, true, '10.0.0.7');

      expect(new FakeConnection(tracker, true, '10.0.0.8').accepted).toBe(true);
    });

    it('should give the slot back when a connection closes, once', () => {
      const tracker = new ConnectionTracker(1);
      const first = new FakeConnection(tracker, true, '10.0.0.7');
      const refused = new FakeConnection(tracker, true, '10.0.0.7');
      // A refused connection closes too; it held no slot and must not free one.
      tracker.closed(refused);
      expect(new FakeConnection(tracker, true, '10.0.0.7').accepted).toBe(
        false,
      );

      first.destroy();

      expect(new FakeConnection(tracker, true, '10.0.0.7').accepted).toBe(true);
    });

    it('should have no cap at 0', () => {
      const tracker = new ConnectionTracker(0);
      for (let i = 0; i < 50; i += 1)
        new FakeConnection(tracker, true, '10.0.0.7');

      expect(tracker.open).toBe(50);
    });
  });
});
