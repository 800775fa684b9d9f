/**
 * The only importer of uWebSockets.js. The package silently falls back to a
 * slow JavaScript implementation when its native binary does not load; the
 * broker refuses to run on that (see `assertNativeUws`).
 */
import uws from 'uWebSockets.js';

export type { HttpRequest, HttpResponse, TemplatedApp, WebSocket, us_listen_socket } from 'uWebSockets.js';

export const { App, us_listen_socket_close, us_socket_local_port } = uws;

/** True when the native uWebSockets.js binary is loaded (the fallback has no SSLApp). */
export function nativeUwsLoaded(): boolean {
  return typeof (uws as unknown as Record<string, unknown>)['SSLApp'] === 'function';
}

export function assertNativeUws(): void {
  if (!nativeUwsLoaded()) {
    throw new Error(
      'uWebSockets.js loaded its JavaScript fallback instead of the native binary (unset UWS_USE_FALLBACK, or check that this platform and Node version have a binary)',
    );
  }
}
