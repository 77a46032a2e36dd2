import type { Context } from "hono";

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

