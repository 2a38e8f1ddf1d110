/**
 * The route-rules file (KEYWARD_ROUTES_FILE): per request path, which scopes an API key
 * needs, or that the path is public. It covers what Istio cannot attach as per-route
 * `context_extensions`; read and validated once at start (the format: docs/).
 */
export { RouteRulesError } from './errors';
export { loadRouteRules, parseRouteRules } from './load';
export { normalizePath } from './normalize';
export { RouteTable, type RouteMatch, type RouteRule } from './table';
