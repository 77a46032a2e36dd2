/**
 * The shape of a batch that leaves some writes to its end (Attempts.gathering,
 * FairQueue.joiningMany, FairQueue.releasingMany): `fn` runs with `gatherer` installed, which is
 * removed however `fn` ends; then `write` makes what was gathered. When `fn` throws, nothing is
 * written: the step that ran it rolls back whole.
 */
export function gatherFor<G, T>(gatherer: G, install: (gatherer: G | null) => void, fn: () => T, write: (gathered: G) => void): T {
  install(gatherer);
  let result: T;
  try {
    result = fn();
  } finally {
    install(null);
  }
  write(gatherer);
  return result;
}
