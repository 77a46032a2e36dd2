/** How a document vector is stored in D1: float32 bytes. */

/** A vector as bytes for D1, and back. */
export const toBlob = (v: Float32Array): ArrayBuffer => v.buffer.slice(v.byteOffset, v.byteOffset + v.byteLength) as ArrayBuffer;
export const fromBlob = (blob: ArrayBuffer | Uint8Array | number[]): Float32Array => {
  const bytes = blob instanceof Uint8Array ? blob : blob instanceof ArrayBuffer ? new Uint8Array(blob) : Uint8Array.from(blob);
  return new Float32Array(bytes.buffer.slice(bytes.byteOffset, bytes.byteOffset + bytes.byteLength));
};
