// GraphQL over HTTP, the way any client of the gateway speaks it: POST
// /graphql with the bearer token. Errors come back as `ApiError` with the
// stable `extensions.code` (and `extensions.field` for bad input); a refused
// token also tells the session, which brings the sign-in back.

import { session } from './session.js';

let graphqlPath = '/graphql';

/** Sets the endpoint from the gateway's settings. */
export function configure(settings) {
  graphqlPath = settings.graphqlPath;
}

/** A failed request: `code` is the API's `extensions.code` (or NETWORK / HTTP_<status>). */
export class ApiError extends Error {
  constructor(message, { code, field = null, errors = [] }) {
    super(message);
    this.code = code;
    this.field = field;
    this.errors = errors;
  }
}

/** Runs `query` with `variables`; resolves to `data`, rejects with an ApiError. */
export async function request(query, variables = {}) {
  const token = session.token();
  let response;
  try {
    response = await fetch(graphqlPath, {
      method: 'POST',
      headers: {
        'Content-Type': 'application/json',
        // With application/json a GraphQL error (bad input, say) comes with
        // HTTP 200, so the browser reports only real transport failures.
        Accept: 'application/json',
        Authorization: `Bearer ${token}`,
      },
      body: JSON.stringify({ query, variables }),
    });
  } catch {
    throw new ApiError('The gateway cannot be reached.', { code: 'NETWORK' });
  }
  let body = null;
  try {
    body = await response.json();
  } catch {
    // Not JSON: a proxy's error page, say.
  }
  const errors = (body && body.errors) || [];
  const first = errors[0];
  const code = first && first.extensions && first.extensions.code;
  if (response.status === 401 || code === 'UNAUTHENTICATED') {
    const message = first ? first.message : 'The token was refused.';
    session.refused(message);
    throw new ApiError(message, { code: 'UNAUTHENTICATED', errors });
  }
  if (first) {
    throw new ApiError(first.message, {
      code: code || 'ERROR',
      field: (first.extensions && first.extensions.field) || null,
      errors,
    });
  }
  if (!response.ok || !body || !body.data) {
    throw new ApiError(`The gateway answered HTTP ${response.status}.`, { code: `HTTP_${response.status}` });
  }
  return body.data;
}
