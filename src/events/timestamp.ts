/**
 * RFC 3339 §5.6 `date-time`: `YYYY-MM-DDTHH:MM:SS[.frac](Z|±HH:MM)`, `T` and `Z` in either case
 * (§5.6 note). The syntax regex has no captures, so checking allocates nothing; fields sit at
 * fixed positions and are read with `charCodeAt`.
 */

const DATE_TIME = /^\d{4}-\d{2}-\d{2}[Tt]\d{2}:\d{2}:\d{2}(?:\.\d+)?(?:[Zz]|[+-]\d{2}:\d{2})$/;
const WITHOUT_OFFSET = /^\d{4}-\d{2}-\d{2}[Tt]\d{2}:\d{2}:\d{2}(?:\.\d+)?$/;

function digits(value: string, at: number, count: number): number {
  let n = 0;
  for (let i = at; i < at + count; i++) n = n * 10 + value.charCodeAt(i) - 48;
  return n;
}

function isLeapYear(year: number): boolean {
  return year % 4 === 0 && (year % 100 !== 0 || year % 400 === 0);
}

function daysInMonth(year: number, month: number): number {
  return month === 2
    ? isLeapYear(year)
      ? 29
      : 28
    : month === 4 || month === 6 || month === 9 || month === 11
      ? 30
      : 31;
}

/**
 * RFC 3339 §5.7 allows second 60 only for a leap second, which UTC inserts as 23:59:60 on the
 * last day of a month. Leap seconds are announced only months ahead, so the date is not checked
 * against a table; the local time, shifted by its offset, must be that minute.
 */
function isLeapSecondMinute(
  year: number,
  month: number,
  day: number,
  hour: number,
  minute: number,
  offsetMinutes: number,
): boolean {
  const utc = new Date(0);
  // setUTCFullYear, unlike Date.UTC, does not read years 0–99 as 1900–1999.
  utc.setUTCFullYear(year, month - 1, day);
  utc.setUTCHours(hour, minute - offsetMinutes, 0, 0);
  return (
    utc.getUTCHours() === 23 &&
    utc.getUTCMinutes() === 59 &&
    utc.getUTCDate() === daysInMonth(utc.getUTCFullYear(), utc.getUTCMonth() + 1)
  );
}

/** Why `value` is not an RFC 3339 date-time, or undefined if it is one. */
export function timestampProblem(value: string): string | undefined {
  if (!DATE_TIME.test(value)) {
    return WITHOUT_OFFSET.test(value)
      ? 'must have a time offset (Z or ±HH:MM), as RFC 3339 requires'
      : 'must be an RFC 3339 date-time such as 2018-04-05T17:31:00Z';
  }
  const year = digits(value, 0, 4);
  const month = digits(value, 5, 2);
  const day = digits(value, 8, 2);
  const hour = digits(value, 11, 2);
  const minute = digits(value, 14, 2);
  const second = digits(value, 17, 2);
  let offsetMinutes = 0;
  const last = value.charCodeAt(value.length - 1);
  if (last !== 0x5a && last !== 0x7a) {
    const offsetHour = digits(value, value.length - 5, 2);
    const offsetMinute = digits(value, value.length - 2, 2);
    if (offsetHour > 23 || offsetMinute > 59)
      return 'has an offset out of range (hours 00–23, minutes 00–59)';
    offsetMinutes = (offsetHour * 60 + offsetMinute) * (value.charCodeAt(value.length - 6) === 0x2d ? -1 : 1);
  }
  if (month < 1 || month > 12) return 'has a month out of range (01–12)';
  if (day < 1 || day > daysInMonth(year, month)) return `has a day out of range for ${value.slice(0, 7)}`;
  if (hour > 23) return 'has an hour out of range (00–23)';
  if (minute > 59) return 'has a minute out of range (00–59)';
  if (second === 60) {
    return isLeapSecondMinute(year, month, day, hour, minute, offsetMinutes)
      ? undefined
      : 'has second 60, which is only a leap second at 23:59:60 UTC on the last day of a month';
  }
  if (second > 59) return 'has a second out of range (00–59, or 60 for a leap second)';
  return undefined;
}

/** Milliseconds since the epoch of an RFC 3339 date-time; NaN when `value` is not one. */
export function parseTimestampMs(value: string): number {
  return timestampProblem(value) === undefined ? timestampMs(value) : Number.NaN;
}

/**
 * Milliseconds since the epoch of a date-time `timestampProblem` accepts (anything else gives
 * a meaningless number). Digits past the millisecond are cut; a leap second is the next second.
 */
export function timestampMs(value: string): number {
  let millis = 0;
  if (value.charCodeAt(19) === 0x2e) {
    for (let i = 20, scale = 100; scale >= 1; i++, scale /= 10) {
      const digit = value.charCodeAt(i) - 48;
      if (digit < 0 || digit > 9) break;
      millis += digit * scale;
    }
  }
  let offsetMinutes = 0;
  const last = value.charCodeAt(value.length - 1);
  if (last !== 0x5a && last !== 0x7a) {
    offsetMinutes =
      (digits(value, value.length - 5, 2) * 60 + digits(value, value.length - 2, 2)) *
      (value.charCodeAt(value.length - 6) === 0x2d ? -1 : 1);
  }
  const utc = new Date(0);
  utc.setUTCFullYear(digits(value, 0, 4), digits(value, 5, 2) - 1, digits(value, 8, 2));
  utc.setUTCHours(digits(value, 11, 2), digits(value, 14, 2) - offsetMinutes, digits(value, 17, 2), millis);
  return utc.getTime();
}
