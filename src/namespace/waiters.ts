/**
 * Long-polls waiting for a task to change, by task id: the version each saw, and its wake-up.
 * A change wakes them once it has committed (in a microtask), so they read the new state.
 */
export class Waiters {
  private readonly waiters = new Map<string, Set<{ version: number; wake: () => void }>>();
  private wakeScheduled = false;

  /** Resolves when `wake` finds the task at another version than `version`, or after `waitMs`. */
  wait(taskId: string, version: number, waitMs: number): Promise<void> {
    return new Promise<void>((resolve) => {
      let waiters = this.waiters.get(taskId);
      if (!waiters) this.waiters.set(taskId, (waiters = new Set()));
      const waiter = {
        version,
        wake: () => {
          clearTimeout(timer);
          waiters.delete(waiter);
          if (waiters.size === 0 && this.waiters.get(taskId) === waiters) this.waiters.delete(taskId);
          resolve();
        },
      };
      const timer = setTimeout(waiter.wake, waitMs);
      waiters.add(waiter);
    });
  }

  /** Wakes the long-polls whose task has a new version, once the current change has committed. */
  wake(versionOf: (taskId: string) => number): void {
    if (this.wakeScheduled || this.waiters.size === 0) return;
    this.wakeScheduled = true;
    queueMicrotask(() => {
      this.wakeScheduled = false;
      for (const [taskId, waiters] of this.waiters) {
        const version = versionOf(taskId);
        for (const waiter of [...waiters]) if (waiter.version !== version) waiter.wake();
      }
    });
  }

  /** Long-polls waiting now. */
  count(): number {
    let count = 0;
    for (const waiters of this.waiters.values()) count += waiters.size;
    return count;
  }
}
