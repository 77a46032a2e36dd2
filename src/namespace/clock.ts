/**
 * The Durable Object's notion of now. Tests move it forward to reach timeouts and lease expiry
 * without waiting; the alarm is always set in real time, so an advanced clock makes due timers
 * fire at once.
 */
export class Clock {
  private offsetMs = 0;

  now(): number {
    return Date.now() + this.offsetMs;
  }

  advance(ms: number): void {
    this.offsetMs += ms;
  }

  /** Converts a time on this clock to wall-clock time for `setAlarm`. */
  toWall(at: number): number {
    return at - this.offsetMs;
  }
}
