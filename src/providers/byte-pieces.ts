/**
 * A body kept as the pieces it arrived in (the chunks an upstream's reply came in), read as if it
 * were one buffer. Joining a 2 MB reply into one buffer costs a fresh allocation and a copy per
 * request, which profiled as the largest cost a gateway added to a large image; the pieces are
 * already in memory, so they are searched and sliced where they lie.
 */
export class BytePieces {
  readonly pieces: readonly Buffer[];
  readonly length: number;
  /** Where each piece starts in the whole. */
  private readonly starts: number[];

  constructor(pieces: Buffer | readonly Buffer[]) {
    this.pieces = Buffer.isBuffer(pieces) ? [pieces] : pieces.filter((piece) => piece.length > 0);
    this.starts = [];
    let length = 0;
    for (const piece of this.pieces) {
      this.starts.push(length);
      length += piece.length;
    }
    this.length = length;
  }

  byteAt(offset: number): number | undefined {
    const index = this.pieceAt(offset);
    return index === -1 ? undefined : this.pieces[index]?.[offset - (this.starts[index] ?? 0)];
  }

  /** The first offset at or after `from` where `needle` starts, or -1. */
  indexOf(needle: Buffer | number, from = 0): number {
    if (from >= this.length) return -1;
    const width = typeof needle === "number" ? 1 : needle.length;
    for (let index = Math.max(this.pieceAt(from), 0); index < this.pieces.length; index++) {
      const piece = this.pieces[index] as Buffer;
      const start = this.starts[index] as number;
      const found = piece.indexOf(needle, Math.max(from - start, 0));
      if (found !== -1) return start + found;
      if (width === 1) continue;
      // The needle may start near this piece's end and go on in the next ones.
      const end = start + piece.length;
      const seamStart = Math.max(from, end - (width - 1));
      const seam = Buffer.concat(this.slice(seamStart, Math.min(end + width - 1, this.length)));
      const inSeam = seam.indexOf(needle);
      if (inSeam !== -1 && seamStart + inSeam < end) return seamStart + inSeam;
    }
    return -1;
  }

  /** The bytes from `start` to `end` as views of the pieces: nothing is copied. */
  slice(start: number, end = this.length): Buffer[] {
    const views: Buffer[] = [];
    if (end <= start || start >= this.length) return views;
    for (let index = Math.max(this.pieceAt(start), 0); index < this.pieces.length; index++) {
      const piece = this.pieces[index] as Buffer;
      const pieceStart = this.starts[index] as number;
      if (pieceStart >= end) break;
      views.push(piece.subarray(Math.max(start - pieceStart, 0), end - pieceStart));
    }
    return views;
  }

  /** The whole as one buffer: a copy, unless it is one piece already. */
  joined(): Buffer {
    return this.pieces.length === 1
      ? (this.pieces[0] as Buffer)
      : Buffer.concat(this.pieces, this.length);
  }

  /** The index of the piece holding `offset`, or -1 past the end. */
  private pieceAt(offset: number): number {
    if (offset >= this.length || offset < 0) return -1;
    let low = 0;
    let high = this.starts.length - 1;
    while (low < high) {
      const middle = (low + high + 1) >> 1;
      if ((this.starts[middle] as number) <= offset) low = middle;
      else high = middle - 1;
    }
    return low;
  }
}
