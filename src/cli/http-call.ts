/** Calls to the broker's HTTP API for the commands that use it (filters, dead letters). */

/** The broker's HTTP base, whether given as http(s) or as its WebSocket endpoint. */
function httpBase(url: string): string {
  const parsed = new URL(url);
  parsed.protocol =
    parsed.protocol === 'wss:' ? 'https:' : parsed.protocol === 'ws:' ? 'http:' : parsed.protocol;
  return parsed.origin;
}

/** Calls the API; a problem+json answer becomes an Error with its code and detail. */
export async function call(url: string, pathAndQuery: string, init: RequestInit = {}): Promise<unknown> {
  let response: Response;
  try {
    response = await fetch(`${httpBase(url)}${pathAndQuery}`, init);
  } catch (error) {
    throw new Error(`cannot reach the broker at ${url}: ${(error as Error).message}`, { cause: error });
  }
  const body = (await response.json().catch(() => null)) as { code?: string; detail?: string } | null;
  if (!response.ok)
    throw new Error(`${body?.code ?? response.status}: ${body?.detail ?? response.statusText}`);
  return body;
}
