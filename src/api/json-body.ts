import type { Context } from "hono";
import { jsonBytes } from "../tasks/model";

const JSON_TYPE = /^application\/([\w.-]+\+)?json\s*(;|$)/i;

/** Whether a Content-Type names JSON (`application/json`, `application/<x>+json`, with parameters). */
export const isJsonType = (type: string | null | undefined): boolean => !!type && JSON_TYPE.test(type);

/**
 * A request sent as JSON with no body at all reads as `{}`: a route whose body is optional
 * (`POST /v1/tasks/list`, …) then answers as if `{}` had been sent, instead of the 400 that
 * parsing "" as JSON gives, and a route that needs a body names the missing fields (422).
 * The body is read only when a validator asks for it, so never before authentication. The
 * caller has checked that the request's Content-Type is JSON (isJsonType).
 */
export function readEmptyJsonAsEmptyObject(c: Context): void {
  const request = c.req;
  // Hono's own json() is JSON.parse of the text too; the route's zod schema validates the value.
  request.json = async <T>(): Promise<T> => {
    const text = await request.text();
    return (text.trim() === "" ? {} : JSON.parse(text)) as T;
  };
}

/**
 * Whether `value` takes more than `limit` bytes as JSON (jsonBytes). A UTF-16 code unit takes at
 * most 3 bytes of UTF-8, so a text that short is within the limit without being encoded: the
 * usual small inputs and outputs cost no encoding per request.
 */
export function jsonOver(value: unknown, limit: number): boolean {
  return JSON.stringify(value).length * 3 > limit && jsonBytes(value) > limit;
}
