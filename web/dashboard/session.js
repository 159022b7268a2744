// The bearer token of this tab. A token pasted at sign-in is kept in
// sessionStorage only (gone when the tab closes); the development token comes
// fresh from the gateway's settings on every load and is not stored. A token
// that expires, or that the gateway refuses, ends the session: the listeners
// bring the sign-in back.

const STORAGE_KEY = 'actiongate.token';
const WRITE_ROLE = 'SecurityActions.ReadWrite.All';
/** Longest delay setTimeout keeps (about 24.8 days). */
const MAX_TIMER = 2 ** 31 - 1;

/** The claims of a JWT, or null when it is not one. The gateway checks the
 *  signature; the page only reads who it is and when it expires. */
export function claimsOf(token) {
  const parts = token.split('.');
  if (parts.length !== 3) return null;
  try {
    const json = atob(parts[1].replace(/-/g, '+').replace(/_/g, '/'));
    const bytes = Uint8Array.from(json, (c) => c.charCodeAt(0));
    return JSON.parse(new TextDecoder().decode(bytes));
  } catch {
    return null;
  }
}

function expired(claims) {
  return typeof claims.exp === 'number' && claims.exp * 1000 <= Date.now();
}

class Session {
  #token = null;
  #claims = null;
  #timer = null;
  #listeners = [];

  /** The token in use, or null when signed out. */
  token() {
    return this.#token;
  }

  /** Who the token names, for the header. */
  describe() {
    const c = this.#claims || {};
    const user = c.upn || c.preferred_username || c.unique_name || c.sub || 'unknown user';
    return c.tid ? `${user} · tenant ${c.tid}` : user;
  }

  /** Whether the token may invoke and cancel. */
  canWrite() {
    const roles = (this.#claims && this.#claims.roles) || [];
    return Array.isArray(roles) && roles.includes(WRITE_ROLE);
  }

  /** Picks the stored token, else the development one; false when neither will do. */
  resume(devToken) {
    const stored = sessionStorage.getItem(STORAGE_KEY);
    if (stored && this.#use(stored) === null) return true;
    sessionStorage.removeItem(STORAGE_KEY);
    return Boolean(devToken) && this.#use(devToken) === null;
  }

  /** Signs in with a pasted token; returns why not, or null. */
  signIn(text) {
    const token = text.trim().replace(/^Bearer\s+/i, '');
    const problem = this.#use(token);
    if (problem === null) sessionStorage.setItem(STORAGE_KEY, token);
    return problem;
  }

  signOut() {
    sessionStorage.removeItem(STORAGE_KEY);
    this.#end('Signed out.');
  }

  /** The gateway refused the token (HTTP 401, WebSocket close 4401). */
  refused(message) {
    sessionStorage.removeItem(STORAGE_KEY);
    this.#end(message || 'The gateway refused the token.');
  }

  /** Calls `listener(reason)` whenever the session ends. */
  onEnd(listener) {
    this.#listeners.push(listener);
  }

  #use(token) {
    if (!token) return 'Paste a bearer token.';
    const claims = claimsOf(token);
    if (claims === null) return 'That is not a JWT (three base64url parts separated by dots).';
    if (expired(claims)) return 'That token has expired.';
    this.#token = token;
    this.#claims = claims;
    clearTimeout(this.#timer);
    if (typeof claims.exp === 'number') {
      const left = claims.exp * 1000 - Date.now();
      this.#timer = setTimeout(() => this.refused('Your token expired. Sign in again.'), Math.min(left, MAX_TIMER));
    }
    return null;
  }

  #end(reason) {
    if (this.#token === null) return;
    this.#token = null;
    this.#claims = null;
    clearTimeout(this.#timer);
    for (const listener of this.#listeners) listener(reason);
  }
}

/** The one session of the page. */
export const session = new Session();
