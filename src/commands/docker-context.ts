import type { DockerPort } from '../docker/docker-port.js';
import { DockerodeAdapter } from '../docker/dockerode-adapter.js';

// The Docker port the commands use; tests replace it with a fake.
let factory: () => DockerPort = () => new DockerodeAdapter();

export function dockerPort(): DockerPort {
  return factory();
}

export function useDockerPort(create: () => DockerPort): void {
  factory = create;
}
