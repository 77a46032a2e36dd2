// The Worker as the tests run it: the production Worker, with the Durable Object class that adds
// the test seams (test/namespace-do.ts) bound as NamespaceDO.
export { default } from "../src/index";
export { TestNamespaceDO as NamespaceDO } from "./namespace-do";
