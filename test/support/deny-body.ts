/** The JSON body of a denied Check (src/authz/response.ts), typed for tests. */
export interface DenyBody {
  error: {
    code: string;
    message: string;
    /** Details some codes add (retry_after_seconds, required_scopes …). */
    [detail: string]: unknown;
  };
}

/** Parses a deny body; a test asserts on what it reads, so no validation here. */
export function parseDenyBody(text: string): DenyBody {
  return JSON.parse(text) as DenyBody;
}
