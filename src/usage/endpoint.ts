/** The endpoint label usage is counted under: one function for the Check, the access log and RecordUsage. */
import { normalizePath } from '../authz/routes/normalize';

/** Labels are cut to this many characters (RecordUsage's endpoint limit). */
export const ENDPOINT_LABEL_MAX = 512;

/** What replaces an id-like path segment. */
export const ID_SEGMENT = '{id}';

/** Where a request's endpoint label can come from, in order of precedence. */
export interface EndpointSource {
  /** The request path (query and fragment allowed; they are dropped). */
  path: string;
  /** The matched route rule's template (its `path` glob or `path_prefix`), when a rule matched. */
  routeTemplate?: string;
  /** context_extensions `keyward_endpoint`, when Envoy set one on the route. */
  extensionEndpoint?: string;
}

/**
 * The endpoint label of a request: the route rule's template when a rule matched; else
 * `keyward_endpoint` when Envoy set a non-empty one; else {@link endpointPath} of the
 * path. At most ENDPOINT_LABEL_MAX characters.
 */
export function endpointLabel(source: EndpointSource): string {
  if (source.routeTemplate) return source.routeTemplate.slice(0, ENDPOINT_LABEL_MAX);
  if (source.extensionEndpoint) return source.extensionEndpoint.slice(0, ENDPOINT_LABEL_MAX);
  return endpointPath(source.path);
}

/**
 * The path normalised with normalizePath (query dropped, unreserved escapes decoded,
 * slashes merged, dot segments removed), then every id-like segment (see
 * {@link isIdSegment}) replaced by `{id}`, cut to ENDPOINT_LABEL_MAX characters.
 * The result starts with `/`, never contains `//`, and (below the cut) labelling it
 * again changes nothing.
 */
export function endpointPath(path: string): string {
  if (path.length > LABEL_MEMO_PATH_MAX) return labelOf(path);
  let label = LABELS.get(path);
  if (label === undefined) {
    label = labelOf(path);
    // Bounded: a client sending ever new paths only empties the memo now and then.
    if (LABELS.size >= LABEL_MEMO_MAX) LABELS.clear();
    LABELS.set(path, label);
  }
  return label;
}

/** The labels of recent paths: endpointPath is pure, and a service's paths repeat. */
const LABELS = new Map<string, string>();
const LABEL_MEMO_MAX = 4096;
/** Longer paths are labelled each time, so the memo holds at most about 2 MB of paths. */
const LABEL_MEMO_PATH_MAX = 512;

function labelOf(path: string): string {
  const normal = normalizePath(path);
  let label = normal;
  if (ID_CANDIDATE.test(normal)) {
    const segments = normal.split('/');
    for (let i = 1; i < segments.length; i++) if (isIdSegment(segments[i]!)) segments[i] = ID_SEGMENT;
    label = segments.join('/');
  }
  return label.length > ENDPOINT_LABEL_MAX ? label.slice(0, ENDPOINT_LABEL_MAX) : label;
}

/** A path with a digit somewhere: the only kind that can hold an id-like segment. */
const ID_CANDIDATE = /[0-9]/;
const DECIMAL = /^[0-9]+$/;
const UUID = /^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$/;
const LONG_HEX = /^(?=[a-fA-F]*[0-9])[0-9a-fA-F]{16,}$/;
const LONG_BASE62 = /^(?=[A-Za-z]*[0-9])(?=[0-9]*[A-Za-z])[A-Za-z0-9]{20,}$/;

/**
 * True for a segment that names one resource rather than a kind of them:
 *  - a decimal number (`12345`, `0`);
 *  - a UUID, any version or case (`550e8400-e29b-41d4-a716-446655440000`);
 *  - long hex: 16 or more hex digits, at least one of them 0-9 (`0123456789abcdef`, a SHA);
 *  - long base62: 20 or more letters and digits, with at least one of each.
 * Anything else (`v1`, `users`, `me`, `{id}`) is kept.
 */
export function isIdSegment(segment: string): boolean {
  return DECIMAL.test(segment) || UUID.test(segment) || LONG_HEX.test(segment) || LONG_BASE62.test(segment);
}

/** The label usage is counted under once its organization has reached its distinct-endpoint cap for the month. */
export const OTHER_ENDPOINT = '(other)';
