import type { Buffer } from "node:buffer";
import { callbackKeyBytes, mintCallbackToken, newCallbackKey } from "../tasks/callback-token";
import type { Sql } from "./sql";

/**
 * The namespace's callback key and the tokens minted under it (src/tasks/callback-token.ts).
 * The key is made on first use and kept in `meta`, so tokens handed out stay good across a
 * restart of the object; Workers fetch it once per isolate to check tokens themselves.
 */
export class CallbackTokens {
  private held: { key: string; bytes: Buffer } | null = null;

  constructor(
    private readonly sql: Sql,
    private readonly namespaceId: () => string,
  ) {}

  /**
   * The key, made if there is none yet. The object makes it when it starts (NamespaceCore),
   * outside any transaction: a key written in a transaction that rolled back must not stay in
   * memory, where tokens would be signed with it and Workers would keep it.
   */
  key(): string {
    return this.load().key;
  }

  /** A new callback token for an attempt (or a slice) of `taskId`. */
  mint(taskId: string): string {
    return mintCallbackToken(this.load().bytes, this.namespaceId(), taskId);
  }

  private load(): { key: string; bytes: Buffer } {
    if (this.held) return this.held;
    const read = () => this.sql.one<{ value: string }>("SELECT value FROM meta WHERE key = 'callback_key'")?.value ?? null;
    let key = read();
    if (key === null) {
      this.sql.run("INSERT OR IGNORE INTO meta (key, value) VALUES ('callback_key', ?)", newCallbackKey());
      key = read();
      if (key === null) throw new Error("the callback key could not be stored");
    }
    this.held = { key, bytes: callbackKeyBytes(key) };
    return this.held;
  }
}
