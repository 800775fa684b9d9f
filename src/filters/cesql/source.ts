import type { SourceSpan } from './errors.js';

/** Turns offsets into the expression text into spans with a line and column, for error messages. */
export class SourceText {
  readonly text: string;
  /** Offsets at which each line starts; line breaks are LF, CR LF or a lone CR. */
  readonly #lineStarts: number[] = [0];

  constructor(text: string) {
    this.text = text;
    for (let i = 0; i < text.length; i++) {
      const c = text.charCodeAt(i);
      if (c === 0x0a || (c === 0x0d && text.charCodeAt(i + 1) !== 0x0a)) this.#lineStarts.push(i + 1);
    }
  }

  span(offset: number, length: number): SourceSpan {
    let low = 0;
    let high = this.#lineStarts.length - 1;
    while (low < high) {
      const middle = (low + high + 1) >> 1;
      if ((this.#lineStarts[middle] ?? 0) <= offset) low = middle;
      else high = middle - 1;
    }
    return { offset, length, line: low + 1, column: offset - (this.#lineStarts[low] ?? 0) + 1 };
  }
}
