// What `codexbox kube render` produces: plain Kubernetes objects, ready for YAML.
export interface KubeObject {
  apiVersion: string;
  kind: string;
  metadata: ObjectMeta;
  [field: string]: unknown;
}

export interface ObjectMeta {
  name: string;
  namespace?: string;
  labels: Record<string, string>;
}

// The parts of a render: the codex Job (with its lease Secret) and the broker, either or both.
export type Component = 'job' | 'lease' | 'broker';

export interface RenderTarget {
  // Prefix of every object's name: NAME (the Job), NAME-lease, NAME-broker, NAME-broker-login.
  name: string;
  namespace?: string;
}

export function objectLabels(target: RenderTarget, component: Component): Record<string, string> {
  return {
    'app.kubernetes.io/name': 'codexbox',
    'app.kubernetes.io/instance': target.name,
    'app.kubernetes.io/component': component,
    'app.kubernetes.io/managed-by': 'codexbox',
  };
}

export function objectMeta(target: RenderTarget, name: string, component: Component): ObjectMeta {
  return {
    name,
    ...(target.namespace ? { namespace: target.namespace } : {}),
    labels: objectLabels(target, component),
  };
}

// The container-level settings that every codexbox container shares: no way to gain privileges,
// a root filesystem nothing can write to.
export function lockedDownContainer(capabilities: string[]) {
  return {
    allowPrivilegeEscalation: false,
    privileged: false,
    readOnlyRootFilesystem: true,
    capabilities: { drop: ['ALL'], ...(capabilities.length > 0 ? { add: capabilities } : {}) },
  };
}
