import type { Duplex, Readable, Writable } from 'node:stream';
import Docker from 'dockerode';
import {
  DockerConflictError,
  DockerOperationError,
  DockerUnavailableError,
  ImageBuildError,
  ImageNotFoundError,
  PortInUseError,
} from '../common/errors.js';
import type {
  AttachedStreams,
  BuildProgress,
  ContainerSpec,
  DockerPort,
  NetworkSpec,
  ResourceSummary,
  TerminalSize,
} from './docker-port.js';

interface DockerodeError {
  statusCode?: number;
  code?: string;
  json?: { message?: string };
  message?: string;
}

const unreachableCodes = new Set(['ECONNREFUSED', 'ENOENT', 'EACCES', 'ECONNRESET', 'EPIPE', 'ETIMEDOUT']);

function reasonOf(error: DockerodeError): string {
  return (error.json?.message ?? error.message ?? 'unknown error').split('\n')[0]!.slice(0, 300);
}

// The one place where dockerode's errors become codexbox's.
function translate(error: unknown, action: string): Error {
  const failure = error as DockerodeError;
  if (failure.code && unreachableCodes.has(failure.code)) {
    return new DockerUnavailableError(`cannot reach the Docker engine to ${action} (${failure.code})`, {
      hint: 'Start Docker (or set DOCKER_HOST), check that this user may use it, then try again.',
      cause: error,
    });
  }
  if (failure.statusCode === 409) {
    return new DockerConflictError(`Docker refused to ${action}: ${reasonOf(failure)}`, {
      hint: 'Another resource has that name; run `codexbox clean` or try again.',
      cause: error,
    });
  }
  return new DockerOperationError(`Docker failed to ${action}: ${reasonOf(failure)}`, {
    hint: 'Check `docker info` and the engine log, then try again.',
    cause: error,
  });
}

export async function ignoring<T>(
  statusCodes: number[],
  operation: () => Promise<T>,
  action: string,
): Promise<T | undefined> {
  try {
    return await operation();
  } catch (error) {
    if (statusCodes.includes((error as DockerodeError).statusCode ?? 0)) return undefined;
    throw translate(error, action);
  }
}

export async function attempt<T>(operation: () => Promise<T>, action: string): Promise<T> {
  try {
    return await operation();
  } catch (error) {
    throw translate(error, action);
  }
}

function summaries(
  items: { Name?: string; Id?: string; Labels?: Record<string, string> | null }[],
): ResourceSummary[] {
  return items.map((item) => ({ name: item.Name ?? item.Id ?? '', labels: item.Labels ?? {} }));
}

function exposedPorts(spec: ContainerSpec): Record<string, object> | undefined {
  if (!spec.publishedPorts?.length) return undefined;
  return Object.fromEntries(spec.publishedPorts.map((port) => [`${port.containerPort}/tcp`, {}]));
}

function portBindings(spec: ContainerSpec) {
  if (!spec.publishedPorts?.length) return undefined;
  return Object.fromEntries(
    spec.publishedPorts.map((port) => [
      `${port.containerPort}/tcp`,
      [{ HostIp: port.hostIp, HostPort: String(port.hostPort) }],
    ]),
  );
}

export class DockerodeAdapter implements DockerPort {
  readonly #docker: Docker;

  constructor(docker = new Docker()) {
    this.#docker = docker;
  }

  async ping(): Promise<void> {
    await attempt(() => this.#docker.ping(), 'answer a ping');
  }

  async inspectImage(name: string) {
    const info = await ignoring([404], () => this.#docker.getImage(name).inspect(), `inspect image ${name}`);
    if (!info) return undefined;
    return { id: info.Id, labels: info.Config?.Labels ?? {}, sizeBytes: info.Size };
  }

  async buildImage(
    context: Readable,
    options: { tag: string; buildArgs: Record<string, string> },
    progress: BuildProgress,
  ) {
    const stream = await attempt(
      () =>
        this.#docker.buildImage(context, {
          t: options.tag,
          buildargs: options.buildArgs,
          rm: true,
          forcerm: true,
        }),
      `build ${options.tag}`,
    );
    await new Promise<void>((resolve, reject) => {
      let failure: string | undefined;
      this.#docker.modem.followProgress(
        stream,
        (error) => {
          if (error) reject(translate(error, `build ${options.tag}`));
          else if (failure) {
            reject(
              new ImageBuildError(`building ${options.tag} failed: ${failure.trim().split('\n').at(-1)}`, {
                hint: 'Read the build output above; behind a TLS-intercepting proxy pass --extra-ca FILE.',
              }),
            );
          } else resolve();
        },
        (event: { stream?: string; error?: string; status?: string }) => {
          if (event.error) failure = event.error;
          const line = event.stream ?? event.error ?? event.status;
          if (line) progress(line);
        },
      );
    });
  }

  async createVolume(name: string, labels: Record<string, string>) {
    await attempt(() => this.#docker.createVolume({ Name: name, Labels: labels }), `create volume ${name}`);
  }

  async removeVolume(name: string) {
    await ignoring([404], () => this.#docker.getVolume(name).remove(), `remove volume ${name}`);
  }

  async tagImage(source: string, target: string) {
    const colon = target.lastIndexOf(':');
    const [repo, tag] = colon > 0 ? [target.slice(0, colon), target.slice(colon + 1)] : [target, 'latest'];
    await attempt(() => this.#docker.getImage(source).tag({ repo, tag }), `tag ${source} as ${target}`);
  }

  async listVolumes(labelFilter: string) {
    const result = await attempt(
      () => this.#docker.listVolumes({ filters: { label: [labelFilter] } }),
      'list volumes',
    );
    return summaries(result.Volumes ?? []);
  }

  async createContainer(spec: ContainerSpec): Promise<string> {
    try {
      const container = await this.#docker.createContainer({
        name: spec.name,
        Image: spec.image,
        Cmd: spec.cmd,
        Entrypoint: spec.entrypoint,
        Env: spec.env,
        Labels: spec.labels,
        WorkingDir: spec.workingDir,
        User: spec.user,
        Tty: spec.tty ?? false,
        OpenStdin: spec.openStdin ?? false,
        StdinOnce: spec.openStdin ?? false,
        AttachStdin: spec.openStdin ?? false,
        StopTimeout: spec.stopTimeoutSeconds,
        ExposedPorts: exposedPorts(spec),
        HostConfig: {
          PortBindings: portBindings(spec),
          Binds: spec.binds,
          NetworkMode: spec.networkMode,
          Memory: spec.memoryBytes,
          CapDrop: spec.capDrop,
          CapAdd: spec.capAdd,
          SecurityOpt: spec.securityOpt,
          PidsLimit: spec.pidsLimit,
          Init: false,
          ...(spec.hardened
            ? { CapDrop: ['ALL'], ReadonlyRootfs: true, SecurityOpt: ['no-new-privileges:true'] }
            : {}),
        },
      });
      return container.id;
    } catch (error) {
      if ((error as DockerodeError).statusCode === 404) {
        throw new ImageNotFoundError(`the image ${spec.image} is not on this machine`, {
          hint: 'Build it with `codexbox build` (or pass --image NAME).',
          cause: error,
        });
      }
      throw translate(error, `create container ${spec.name}`);
    }
  }

  async putArchive(containerId: string, path: string, tar: Buffer) {
    await attempt(
      () => this.#docker.getContainer(containerId).putArchive(tar, { path }),
      `copy files into ${path}`,
    );
  }

  async getArchive(containerId: string, path: string): Promise<Readable> {
    return attempt(
      () => this.#docker.getContainer(containerId).getArchive({ path }) as unknown as Promise<Readable>,
      `copy ${path} out of the container`,
    );
  }

  async startContainer(containerId: string) {
    try {
      await this.#docker.getContainer(containerId).start();
    } catch (error) {
      if (/port is already allocated|address already in use/i.test(reasonOf(error as DockerodeError))) {
        throw new PortInUseError(
          `a port the container publishes is taken: ${reasonOf(error as DockerodeError)}`,
          {
            hint: 'Stop the program that listens on that port, then try again.',
            cause: error,
          },
        );
      }
      throw translate(error, 'start the container');
    }
  }

  // codexbox creates its containers without a TTY, so the log is always multiplexed.
  async streamLogs(containerId: string, stdout: Writable, stderr: Writable) {
    const container = this.#docker.getContainer(containerId);
    const stream = (await attempt(
      () => container.logs({ follow: true, stdout: true, stderr: true }),
      'follow the container log',
    )) as unknown as Readable;
    await new Promise<void>((resolve, reject) => {
      this.#docker.modem.demuxStream(stream, stdout, stderr);
      stream.on('end', resolve);
      stream.on('error', reject);
    });
  }

  async attach(containerId: string, streams: AttachedStreams) {
    const container = this.#docker.getContainer(containerId);
    const stream = (await attempt(
      () =>
        container.attach({ stream: true, stdin: !!streams.stdin, stdout: true, stderr: true, hijack: true }),
      'attach to the container',
    )) as unknown as Duplex;
    if (streams.tty) stream.on('data', (chunk: Buffer) => streams.stdout.write(chunk));
    else this.#docker.modem.demuxStream(stream, streams.stdout, streams.stderr);
    streams.stdin?.pipe(stream);
    const ended = new Promise<void>((resolve, reject) => {
      stream.on('end', resolve);
      stream.on('close', resolve);
      stream.on('error', reject);
    });
    const detach = () => {
      streams.stdin?.unpipe(stream);
      streams.stdin?.pause();
      stream.destroy();
    };
    return { ended, detach };
  }

  async resizeTerminal(containerId: string, size: TerminalSize) {
    await ignoring(
      [404, 409, 500],
      () => this.#docker.getContainer(containerId).resize({ h: size.rows, w: size.columns }),
      'resize the terminal',
    );
  }

  async waitContainer(containerId: string) {
    const container = this.#docker.getContainer(containerId);
    const result = await attempt(() => container.wait(), 'wait for the container');
    const state = await ignoring([404], () => container.inspect(), 'inspect the container');
    return { exitCode: result.StatusCode, oomKilled: state?.State?.OOMKilled ?? false };
  }

  async stopContainer(containerId: string, graceSeconds: number) {
    await ignoring(
      [304, 404],
      () => this.#docker.getContainer(containerId).stop({ t: graceSeconds }),
      'stop the container',
    );
  }

  async removeContainer(containerId: string) {
    await ignoring(
      [404, 409],
      // v: the image's anonymous volumes (a fresh run's vault) go with it; named ones never do.
      () => this.#docker.getContainer(containerId).remove({ force: true, v: true }),
      'remove the container',
    );
  }

  async listContainers(labelFilter: string) {
    const list = await attempt(
      () => this.#docker.listContainers({ all: true, filters: { label: [labelFilter] } }),
      'list containers',
    );
    return list.map((item) => ({ name: item.Id, labels: item.Labels ?? {} }));
  }

  async createNetwork(spec: NetworkSpec) {
    await attempt(
      () =>
        this.#docker.createNetwork({
          Name: spec.name,
          Driver: 'bridge',
          CheckDuplicate: true,
          Internal: spec.internal,
          Labels: spec.labels,
          // Without this the host has an address on an internal bridge, and every host service
          // listening on all interfaces is reachable from it.
          Options: spec.internal ? { 'com.docker.network.bridge.inhibit_ipv4': 'true' } : {},
        }),
      `create network ${spec.name}`,
    );
  }

  async connectNetwork(network: string, containerId: string) {
    await attempt(
      () => this.#docker.getNetwork(network).connect({ Container: containerId }),
      `connect a container to network ${network}`,
    );
  }

  async removeNetwork(name: string) {
    await ignoring([404], () => this.#docker.getNetwork(name).remove(), `remove network ${name}`);
  }

  async listNetworks(labelFilter: string) {
    const list = await attempt(
      () => this.#docker.listNetworks({ filters: { label: [labelFilter] } }),
      'list networks',
    );
    return summaries(list);
  }
}
