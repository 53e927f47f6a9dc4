import { PassThrough, Readable, type Writable } from 'node:stream';
import { pack } from 'tar-stream';
import { DockerOperationError } from '../../src/common/errors.js';
import { defaultImage } from '../../src/docker/build-image.js';
import type {
  AttachedStreams,
  ContainerSpec,
  DockerPort,
  NetworkSpec,
  ResourceSummary,
  TerminalSize,
} from '../../src/docker/docker-port.js';

export interface RecordedCall {
  method: keyof DockerPort;
  args: unknown[];
}

// A recording stand-in for Docker: resources live in maps, and any method can be told to fail.
export class FakeDocker implements DockerPort {
  readonly calls: RecordedCall[] = [];
  readonly volumes = new Map<string, Record<string, string>>();
  readonly containers = new Map<string, { spec: ContainerSpec; archives: { path: string; tar: Buffer }[] }>();
  readonly images = new Set<string>(['codexbox:local', defaultImage]);
  readonly networks = new Map<string, { spec: NetworkSpec; containers: string[] }>();
  // What the egress proxy container prints (its first line tells that it listens).
  proxyLogLines = ['codexbox-egress-proxy: listening on :3128; allowing api.openai.com\n'];
  exitCode = 0;
  logLines = ['codex says hi\n'];
  // What the container leaves in /artifacts (getArchive of /artifacts returns these).
  artifacts: Record<string, string> = { 'auth-metadata.json': '{"fake":true}\n' };
  failOn?: keyof DockerPort;
  #ids = 0;

  #record(method: keyof DockerPort, ...args: unknown[]): void {
    this.calls.push({ method, args });
    if (this.failOn === method) {
      throw new DockerOperationError(`injected failure in ${method}`, { hint: 'test' });
    }
  }

  async ping() {
    this.#record('ping');
  }

  // The context digest each built image carries as a label (see build-image.ts).
  readonly imageDigests = new Map<string, string>();

  async inspectImage(name: string) {
    this.#record('inspectImage', name);
    const digest = this.imageDigests.get(name);
    const labels: Record<string, string> = digest ? { 'io.codexbox.context-digest': digest } : {};
    return this.images.has(name) ? { id: 'sha256:fake', labels, sizeBytes: 1 } : undefined;
  }

  async tagImage(source: string, target: string) {
    this.#record('tagImage', source);
    this.images.add(target);
  }

  async buildImage(context: Readable, options: { tag: string; buildArgs: Record<string, string> }) {
    this.#record('buildImage', options.tag);
    context.resume();
    this.images.add(options.tag);
    if (options.buildArgs.CONTEXT_DIGEST)
      this.imageDigests.set(options.tag, options.buildArgs.CONTEXT_DIGEST);
  }

  async createVolume(name: string, labels: Record<string, string>) {
    this.#record('createVolume', name);
    this.volumes.set(name, labels);
  }

  async removeVolume(name: string) {
    this.#record('removeVolume', name);
    this.volumes.delete(name);
  }

  async listVolumes(): Promise<ResourceSummary[]> {
    this.#record('listVolumes');
    return [...this.volumes].map(([name, labels]) => ({ name, labels }));
  }

  async createContainer(spec: ContainerSpec) {
    this.#record('createContainer', spec);
    const id = `container-${++this.#ids}`;
    this.containers.set(id, { spec, archives: [] });
    return id;
  }

  async putArchive(id: string, path: string, tar: Buffer) {
    this.#record('putArchive', id, path);
    this.containers.get(id)?.archives.push({ path, tar });
  }

  async getArchive(id: string, path: string): Promise<Readable> {
    this.#record('getArchive', id, path);
    const archive = pack();
    archive.entry({ name: 'artifacts', type: 'directory' });
    for (const [name, content] of Object.entries(this.artifacts))
      archive.entry({ name: `artifacts/${name}` }, content);
    archive.finalize();
    return Readable.from(archive as AsyncIterable<Buffer>);
  }

  async startContainer(id: string) {
    this.#record('startContainer', id);
  }

  async streamLogs(id: string, stdout: Writable, stderr: Writable) {
    this.#record('streamLogs', id);
    if (this.containers.get(id)?.spec.entrypoint?.includes('codexbox-egress-proxy')) {
      for (const line of this.proxyLogLines) stderr.write(line);
      return;
    }
    for (const line of this.logLines) stdout.write(line);
  }

  async attach(id: string, streams: AttachedStreams) {
    this.#record('attach', id);
    for (const line of this.logLines) streams.stdout.write(line);
    return { ended: Promise.resolve(), detach: () => undefined };
  }

  readonly resizes: TerminalSize[] = [];

  async resizeTerminal(id: string, size: TerminalSize) {
    this.#record('resizeTerminal', id);
    this.resizes.push(size);
  }

  async waitContainer(id: string) {
    this.#record('waitContainer', id);
    return { exitCode: this.exitCode, oomKilled: false };
  }

  async stopContainer(id: string) {
    this.#record('stopContainer', id);
  }

  async removeContainer(id: string) {
    this.#record('removeContainer', id);
    this.containers.delete(id);
  }

  async listContainers(): Promise<ResourceSummary[]> {
    this.#record('listContainers');
    return [...this.containers].map(([name, { spec }]) => ({ name, labels: spec.labels }));
  }

  async createNetwork(spec: NetworkSpec) {
    this.#record('createNetwork', spec);
    this.networks.set(spec.name, { spec, containers: [] });
  }

  async connectNetwork(network: string, id: string) {
    this.#record('connectNetwork', network, id);
    this.networks.get(network)?.containers.push(id);
  }

  async removeNetwork(name: string) {
    this.#record('removeNetwork', name);
    this.networks.delete(name);
  }

  async listNetworks(): Promise<ResourceSummary[]> {
    this.#record('listNetworks');
    return [...this.networks].map(([name, { spec }]) => ({ name, labels: spec.labels }));
  }
}

export function collector(): { stream: PassThrough; text: () => string } {
  const stream = new PassThrough();
  let text = '';
  stream.on('data', (chunk: Buffer) => {
    text += chunk.toString();
  });
  return { stream, text: () => text };
}
