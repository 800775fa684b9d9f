/**
 * Wildcard topic patterns, as NATS subjects: a topic name is dot-separated
 * words, and a pattern's word `*` matches exactly one word, while a last word
 * `>` matches one or more. `orders.*` matches `orders.eu` but not
 * `orders.eu.created`; `orders.>` matches both, and not `orders` itself.
 */

/** True when `topic` contains a wildcard word and so names a pattern rather than one topic. */
export function isTopicPattern(topic: string): boolean {
  return topic.split('.').some((word) => word === '*' || word === '>');
}

/** Why `pattern` is not a valid pattern, or null if it is. */
export function invalidTopicPattern(pattern: string): string | null {
  const words = pattern.split('.');
  for (const [i, word] of words.entries()) {
    if (word === '>') {
      if (i !== words.length - 1) return '">" may only be the last word of a pattern';
    } else if (word !== '*' && !/^[A-Za-z0-9_-]+$/.test(word)) {
      return `"${word}" is neither a word of letters, digits, "-" and "_" nor a wildcard ("*" or ">")`;
    }
  }
  return null;
}

/** Whether `topic` matches `pattern` (a valid pattern; a plain name matches only itself). */
export function matchesTopicPattern(pattern: string, topic: string): boolean {
  const wanted = pattern.split('.');
  const words = topic.split('.');
  for (let i = 0; i < wanted.length; i++) {
    const word = wanted[i];
    if (word === '>') return words.length > i;
    if (i >= words.length || (word !== '*' && word !== words[i])) return false;
  }
  return words.length === wanted.length;
}
