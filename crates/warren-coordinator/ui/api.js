// The coordinator's /v1 API with the bearer token the operator entered once;
// the token lives in this browser's localStorage until "Forget token".

const TOKEN_KEY = 'warren.token';

/** The saved API token. */
export const token = {
  get: () => localStorage.getItem(TOKEN_KEY) ?? '',
  set: (value) => localStorage.setItem(TOKEN_KEY, value),
  clear: () => localStorage.removeItem(TOKEN_KEY),
};

/** A failed API call: HTTP status (0 = unreachable) and the API's error code and message. */
export class ApiError extends Error {
  constructor(status, code, message) {
    super(message);
    this.status = status;
    this.code = code;
  }

  /** "409 illegal_transition: cannot move job ... from running to pending". */
  describe() {
    return this.status ? `${this.status} ${this.code}: ${this.message}` : this.message;
  }
}

/** Calls `/v1<path>` and returns the parsed JSON body; throws ApiError. */
export async function api(path, method = 'GET') {
  let response;
  try {
    response = await fetch(`/v1${path}`, {
      method,
      headers: { Authorization: `Bearer ${token.get()}`, Accept: 'application/json' },
      cache: 'no-store',
    });
  } catch (e) {
    throw new ApiError(0, 'unreachable', `cannot reach the coordinator (${e.message})`);
  }
  const text = await response.text();
  let body = null;
  try {
    body = text ? JSON.parse(text) : null;
  } catch {
    // Not JSON (a proxy's error page, say): report the status below.
  }
  if (!response.ok) {
    const error = body?.error ?? {};
    throw new ApiError(response.status, error.code ?? 'error', error.message ?? response.statusText);
  }
  return body;
}
