/**
 * Bounded work in the Durable Object. The object runs one event at a time: a request, an RPC
 * call or the alarm holds it from one await of real I/O to the next, and code that awaits an
 * already resolved promise (or a synchronous SQLite call) never lets another event in. Long jobs
 * (the alarm's rounds, a bulk cancel) therefore work in chunks of a bounded number of rows, each
 * in its own transaction (committed or not, as a whole), with a real turn of the event loop in
 * between, so that no other request waits behind more than one chunk.
 */

/**
 * Gives the event loop one turn: requests and timers that are ready run before this resolves.
 * A timer, unlike a resolved promise, is an event of its own: input gates stay open for it, as
 * they are closed only while a storage operation is in progress.
 */
export const yieldTurn = (): Promise<void> => new Promise((resolve) => setTimeout(resolve, 0));
