import type { Readable, Writable } from 'node:stream';

// The narrow slice of Docker that codexbox uses, so the orchestrator can be tested against a fake.
export interface ContainerSpec {
  name: string;
  image: string;
  cmd: string[];
  labels: Record<string, string>;
  // Non-secret variables only: secrets travel as files in the CODEX_HOME volume.
  env: string[];
  binds: string[];
  networkMode?: string;
  workingDir?: string;
  user?: string;
  memoryBytes?: number;
  stopTimeoutSeconds?: number;
  entrypoint?: string[];
  // Every capability dropped, a read-only root filesystem and no-new-privileges (the egress proxy).
  hardened?: boolean;
  // Finer hardening for the run container: dropped and kept capabilities, security options, a
  // process limit.
  capDrop?: string[];
  capAdd?: string[];
  securityOpt?: string[];
  pidsLimit?: number;
  // A terminal for codex (`codexbox run -t`), and an open stdin that ends with the attach.
  tty?: boolean;
  openStdin?: boolean;
  // TCP ports of the container published on the host (codex's login callback on 127.0.0.1).
  publishedPorts?: PublishedPort[];
}

export interface PublishedPort {
  containerPort: number;
  hostIp: string;
  hostPort: number;
}

// Where an attached container's streams go. With a TTY, stdout carries the terminal's bytes raw.
export interface AttachedStreams {
  stdin?: Readable;
  stdout: Writable;
  stderr: Writable;
  tty: boolean;
}

export interface TerminalSize {
  columns: number;
  rows: number;
}

export interface NetworkSpec {
  name: string;
  labels: Record<string, string>;
  // No route out, and no address for the host on it: containers reach only each other.
  internal: boolean;
}

export interface ImageInfo {
  id: string;
  labels: Record<string, string>;
  sizeBytes: number;
}

export interface ResourceSummary {
  name: string;
  labels: Record<string, string>;
}

export interface ContainerExit {
  exitCode: number;
  oomKilled: boolean;
}

export type BuildProgress = (line: string) => void;

export interface DockerPort {
  ping(): Promise<void>;
  inspectImage(name: string): Promise<ImageInfo | undefined>;
  buildImage(
    context: Readable,
    options: { tag: string; buildArgs: Record<string, string> },
    progress: BuildProgress,
  ): Promise<void>;
  // Gives an image a second name (repo:tag).
  tagImage(source: string, target: string): Promise<void>;
  createVolume(name: string, labels: Record<string, string>): Promise<void>;
  removeVolume(name: string): Promise<void>;
  listVolumes(labelFilter: string): Promise<ResourceSummary[]>;
  createContainer(spec: ContainerSpec): Promise<string>;
  putArchive(containerId: string, path: string, tar: Buffer): Promise<void>;
  getArchive(containerId: string, path: string): Promise<Readable>;
  startContainer(containerId: string): Promise<void>;
  streamLogs(containerId: string, stdout: Writable, stderr: Writable): Promise<void>;
  // Attaches before start; resolves once attached, with a promise for the end of the output.
  attach(
    containerId: string,
    streams: AttachedStreams,
  ): Promise<{ ended: Promise<void>; detach: () => void }>;
  resizeTerminal(containerId: string, size: TerminalSize): Promise<void>;
  waitContainer(containerId: string): Promise<ContainerExit>;
  stopContainer(containerId: string, graceSeconds: number): Promise<void>;
  removeContainer(containerId: string): Promise<void>;
  listContainers(labelFilter: string): Promise<ResourceSummary[]>;
  createNetwork(spec: NetworkSpec): Promise<void>;
  // Attaches a created container to one more network (before it starts).
  connectNetwork(network: string, containerId: string): Promise<void>;
  removeNetwork(name: string): Promise<void>;
  listNetworks(labelFilter: string): Promise<ResourceSummary[]>;
}
