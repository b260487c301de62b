// Where the API is and who the shopper is. Everything here is read from the page's URL, a meta tag,
// the build, or localStorage — never from a server response.

const TOKEN_KEY = 'flash-sale.token';
const USER_KEY = 'flash-sale.userId';

function isLoopback(url: URL): boolean {
  return ['127.0.0.1', 'localhost', '[::1]'].includes(url.hostname);
}

/**
 * The API's base URL without a trailing slash; '' means the page's own origin (the deployed
 * setup: CloudFront serves page and API together). In order of precedence:
 * 1. `?api=http://127.0.0.1:9000` — loopback addresses only, so a crafted link cannot send a
 *    shopper's token elsewhere;
 * 2. `<meta name="flash-sale-api" content="...">`, which the local static server fills in;
 * 3. `VITE_API_BASE` at build time.
 */
export function apiBase(location: Location = window.location, doc: Document = document): string {
  const fromQuery = new URLSearchParams(location.search).get('api');
  if (fromQuery) {
    try {
      const url = new URL(fromQuery);
      if ((url.protocol === 'http:' || url.protocol === 'https:') && isLoopback(url)) {
        return url.origin + url.pathname.replace(/\/+$/, '');
      }
    } catch {
      // Not a URL: ignored like any other value we do not accept.
    }
  }
  const fromMeta = doc.querySelector<HTMLMetaElement>('meta[name="flash-sale-api"]')?.content.trim();
  if (fromMeta) return fromMeta.replace(/\/+$/, '');
  return (import.meta.env.VITE_API_BASE ?? '').replace(/\/+$/, '');
}

/**
 * Takes `?token=...` out of the address bar into localStorage, so that it does not stay in the
 * history or get bookmarked. Call once at start-up.
 */
export function adoptTokenFromUrl(): void {
  const url = new URL(window.location.href);
  const token = url.searchParams.get('token');
  if (token === null) return;
  setToken(token);
  url.searchParams.delete('token');
  history.replaceState(history.state, '', url.toString());
}

export function getToken(): string {
  return localStorage.getItem(TOKEN_KEY) ?? '';
}

export function setToken(token: string): void {
  const clean = token.trim().replace(/^Bearer\s+/i, '');
  if (clean) localStorage.setItem(TOKEN_KEY, clean);
  else localStorage.removeItem(TOKEN_KEY);
}

export function getSavedUserId(): string {
  return localStorage.getItem(USER_KEY) ?? '';
}

export function saveUserId(userId: string): void {
  if (userId) localStorage.setItem(USER_KEY, userId);
}

// The stored key keeps its first spelling, so a place saved before still survives a reload.
const PLACE_KEY = 'flash-sale.line.';

/** Who this browser joined a sale's waiting room as, and whether they joined in the pre-queue. */
export interface JoinedRoom {
  userId: string;
  prequeue: boolean;
}

/** The place this browser holds in a sale's waiting room, so a reload keeps it. */
export function getJoinedRoom(saleId: string): JoinedRoom | undefined {
  try {
    const saved: unknown = JSON.parse(localStorage.getItem(PLACE_KEY + saleId) ?? 'null');
    if (typeof saved === 'object' && saved !== null && 'userId' in saved && typeof saved.userId === 'string' && saved.userId) {
      return { userId: saved.userId, prequeue: 'prequeue' in saved && saved.prequeue === true };
    }
  } catch {
    // Not ours or damaged: as if never joined.
  }
  return undefined;
}

export function saveJoinedRoom(saleId: string, joined: JoinedRoom): void {
  localStorage.setItem(PLACE_KEY + saleId, JSON.stringify(joined));
}

export function forgetJoinedRoom(saleId: string): void {
  localStorage.removeItem(PLACE_KEY + saleId);
}

/**
 * The `sub` claim of a JWT, read without verifying it: only to show who the token is for and to
 * fill in the user id. The API Gateway authorizer is what checks the token.
 */
export function tokenSubject(token: string): string | undefined {
  const payload = token.split('.')[1];
  if (!payload) return undefined;
  try {
    const base64 = payload.replace(/-/g, '+').replace(/_/g, '/');
    const bytes = Uint8Array.from(atob(base64), (c) => c.charCodeAt(0));
    const claims: unknown = JSON.parse(new TextDecoder().decode(bytes));
    if (typeof claims === 'object' && claims !== null && 'sub' in claims && typeof claims.sub === 'string') {
      return claims.sub;
    }
  } catch {
    // Not a JWT we can read; the API will say so.
  }
  return undefined;
}
