/** Typed views of the deploy/ manifests and Envoy's bootstrap, as far as test/deploy.manifests.test.ts reads them. */

/** The parts of the manifests the tests read (parsed YAML, checked by the assertions). */
export interface EnvVar {
  name: string;
  value?: string | number | boolean | null;
}
export interface VolumeMount {
  name: string;
  mountPath: string;
  readOnly?: boolean;
}
export interface Volume {
  name: string;
  secret?: { items?: { key: string; path: string }[] };
  configMap?: { name: string };
  emptyDir?: object;
}
export interface SecurityContext {
  runAsNonRoot?: boolean;
  runAsUser?: number;
  readOnlyRootFilesystem?: boolean;
  allowPrivilegeEscalation?: boolean;
  capabilities?: { drop?: string[] };
  fsGroup?: number;
}
export interface Probe {
  httpGet: { port: string; path: string };
}
export interface Container {
  name: string;
  image: string;
  args: string[];
  command: string[];
  env?: EnvVar[];
  volumeMounts?: VolumeMount[];
  ports: { name: string; containerPort: number }[];
  readinessProbe: Probe;
  livenessProbe: Probe;
  resources: { requests?: object; limits: { memory?: string } };
  securityContext?: SecurityContext;
}
export interface PodSpec {
  containers: Container[];
  volumes: Volume[];
  securityContext: SecurityContext;
}
export interface ExtensionProvider {
  name: string;
  envoyExtAuthzGrpc?: object;
  envoyHttpAls?: object;
}
/** Every kind's fields in one shape; each kind sets its own. */
export interface Manifest {
  apiVersion: unknown;
  kind: unknown;
  metadata: { name: string; namespace?: string };
  resources: string[];
  data: Record<string, string>;
  stringData: Record<string, string>;
  spec: {
    replicas: number;
    selector: { matchLabels: Record<string, string> };
    template: { spec: PodSpec };
    ports: { name: string; port: number; targetPort: string }[];
    meshConfig: { extensionProviders: ExtensionProvider[] };
    accessLogging: { providers: { name: string }[] }[];
  };
}

/** Envoy's bootstrap, as far as the sidecar test follows it. */
export interface SocketAddress {
  address: string;
  port_value: number;
}
export interface GrpcService {
  envoy_grpc: { cluster_name: string };
}
export interface HttpConnectionManager {
  http_filters: { name: string; typed_config: { grpc_service: GrpcService; failure_mode_allow?: boolean } }[];
  access_log: {
    name: string;
    typed_config: { common_config: { grpc_service: GrpcService }; additional_response_headers_to_log?: string[] };
  }[];
  route_config: { virtual_hosts: { routes: { route: { cluster: string } }[] }[] };
}
export interface Cluster {
  name: string;
  load_assignment: { endpoints: { lb_endpoints: { endpoint: { address: { socket_address: SocketAddress } } }[] }[] };
  typed_extension_protocol_options?: object;
}
export interface Bootstrap {
  static_resources: {
    clusters: Cluster[];
    listeners: { address: { socket_address: SocketAddress }; filter_chains: { filters: { typed_config: HttpConnectionManager }[] }[] }[];
  };
}
