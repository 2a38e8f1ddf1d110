/** Protobuf wire-format basics shared by the hand-written Check codec (check-codec.ts, check-response-encoder.ts). */

/** The wire types keyward reads or writes; 3 and 4 (groups) are refused. */
export const WireType = {
  varint: 0,
  fixed64: 1,
  lengthDelimited: 2,
  fixed32: 5,
} as const;
export type WireType = (typeof WireType)[keyof typeof WireType];

/** A field's tag as it appears on the wire: (field number << 3) | wire type. */
export function fieldTag(fieldNumber: number, wireType: WireType): number {
  return (fieldNumber << 3) | wireType;
}
