import Docker from 'dockerode';
import { SwarmNotManagerError } from '../common/errors.js';
import { attempt, ignoring } from '../docker/dockerode-adapter.js';
import { type FleetMode, jobModeMinimumApi } from './swarm-spec.js';

export interface TaskView {
  id: string;
  nodeId: string;
  // Swarm's task state: new … running, complete, failed, rejected, shutdown, orphaned.
  state: string;
  exitCode?: number;
  message: string;
}

export const finishedStates = new Set(['complete', 'failed', 'rejected', 'shutdown', 'orphaned', 'remove']);

// The few Swarm calls a fleet makes, each translated into codexbox's Docker errors.
export class Swarm {
  readonly #docker: Docker;

  constructor(docker = new Docker()) {
    this.#docker = docker;
  }

  async assertManager(): Promise<void> {
    const info = (await attempt(() => this.#docker.info(), 'read the engine info')) as {
      Swarm?: { LocalNodeState?: string; ControlAvailable?: boolean };
    };
    if (info.Swarm?.ControlAvailable) return;
    throw new SwarmNotManagerError(
      `this Docker engine is not a Swarm manager (swarm: ${info.Swarm?.LocalNodeState || 'inactive'})`,
      {
        hint: 'Run codexbox fleet on a manager (docker swarm init, or DOCKER_HOST=… of a manager).',
      },
    );
  }

  // A replicated job where the engine removes it properly, else the stepped service.
  async fleetMode(): Promise<FleetMode> {
    const version = (await attempt(() => this.#docker.version(), 'read the engine version')) as {
      ApiVersion?: string;
    };
    return Number(version.ApiVersion ?? 0) >= jobModeMinimumApi ? 'job' : 'stepped';
  }

  // A stepped fleet's next tasks: the service's replica count raised (never lowered).
  async scaleService(id: string, replicas: number): Promise<void> {
    const service = this.#docker.getService(id);
    const current = (await attempt(() => service.inspect(), 'read the fleet service')) as {
      Version: { Index: number };
      Spec: Docker.ServiceSpec;
    };
    const spec = { ...current.Spec, Mode: { Replicated: { Replicas: replicas } } };
    await attempt(
      () => service.update({ version: current.Version.Index, ...spec }),
      'scale the fleet service',
    );
  }

  async createSecret(name: string, data: string, labels: Record<string, string>): Promise<string> {
    const created = await attempt(
      () =>
        this.#docker.createSecret({ Name: name, Labels: labels, Data: Buffer.from(data).toString('base64') }),
      'create a Swarm secret',
    );
    return (created as { id: string }).id;
  }

  async createConfig(name: string, data: string, labels: Record<string, string>): Promise<string> {
    const created = await attempt(
      () =>
        this.#docker.createConfig({ Name: name, Labels: labels, Data: Buffer.from(data).toString('base64') }),
      'create a Swarm config',
    );
    return (created as { id: string }).id;
  }

  async createService(spec: Docker.CreateServiceOptions): Promise<string> {
    const created = await attempt(() => this.#docker.createService(spec), 'create the fleet service');
    return (created as unknown as { id: string }).id;
  }

  async tasks(serviceId: string): Promise<TaskView[]> {
    // Filtered here, not by the engine: its `service` filter finds nothing once the service is
    // removed, while the nodes are still removing that service's containers.
    const tasks = (
      (await attempt(() => this.#docker.listTasks(), 'list the fleet tasks')) as { ServiceID?: string }[]
    ).filter((task) => task.ServiceID === serviceId) as {
      ID: string;
      NodeID?: string;
      Status?: { State?: string; Message?: string; Err?: string; ContainerStatus?: { ExitCode?: number } };
    }[];
    return tasks.map((task) => ({
      id: task.ID,
      nodeId: task.NodeID ?? '',
      state: task.Status?.State ?? 'new',
      exitCode: task.Status?.ContainerStatus?.ExitCode,
      message: task.Status?.Err || task.Status?.Message || '',
    }));
  }

  async nodeNames(): Promise<Map<string, string>> {
    const nodes = (await attempt(() => this.#docker.listNodes(), 'list the Swarm nodes')) as {
      ID: string;
      Description?: { Hostname?: string };
    }[];
    return nodeLabels(nodes.map((node) => ({ id: node.ID, hostname: node.Description?.Hostname })));
  }

  async removeService(id: string): Promise<void> {
    await ignoring([404], () => this.#docker.getService(id).remove(), 'remove the fleet service');
  }

  async removeSecret(id: string): Promise<void> {
    await ignoring([404], () => this.#docker.getSecret(id).remove(), 'remove the fleet secret');
  }

  async removeConfig(id: string): Promise<void> {
    await ignoring([404], () => this.#docker.getConfig(id).remove(), 'remove the fleet config');
  }
}

// Each node by its hostname; nodes sharing one (cloned machines) also by their id's start.
export function nodeLabels(nodes: { id: string; hostname?: string }[]): Map<string, string> {
  const count = new Map<string, number>();
  for (const node of nodes) count.set(node.hostname ?? '', (count.get(node.hostname ?? '') ?? 0) + 1);
  return new Map(
    nodes.map((node) => {
      const unique = node.hostname && count.get(node.hostname) === 1;
      return [node.id, unique ? node.hostname! : `${node.hostname ?? 'node'}/${node.id.slice(0, 12)}`];
    }),
  );
}
