import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { extractUntrustedArchive } from '../artifacts/extract-archive.js';
import { openRunDirectory } from '../artifacts/run-directory.js';
import type { Redactor } from '../common/redactor.js';
import { Secret } from '../common/secret.js';
import { CleanupStack } from '../run/cleanup-stack.js';
import {
  type BrokerAdmin,
  endFleetLease,
  type FleetLease,
  issueFleetLease,
  listUploads,
  openUpload,
} from './fleet-lease.js';
import { countByNode, formatProgress, taskSucceeded } from './fleet-progress.js';
import { finishedStates, type Swarm, type TaskView } from './swarm.js';
import { type FleetMode, type FleetTasks, fleetServiceSpec } from './swarm-spec.js';

export interface FleetRunOptions extends FleetTasks {
  // Names the service, secret and config (codexbox-fleet-NAME) and the lease's run id.
  name: string;
  broker: BrokerAdmin;
  configText?: string;
  artifactsDir: string;
  leaseTtlMs: number;
  pollMs?: number;
}

export interface FleetDeps {
  swarm: Swarm;
  redactor: Redactor;
  log: (line: string) => void;
  signal?: AbortSignal;
}

export interface TaskReport {
  task: string;
  node: string;
  state: string;
  exitCode?: number;
  message: string;
  // Files unpacked from what the task sent the broker; null: it sent nothing.
  artifactFiles: number | null;
}

export interface FleetResult {
  name: string;
  tasks: TaskReport[];
  succeeded: number;
  failed: number;
  artifactsDir: string;
}

export class FleetInterrupted extends Error {}

// A fleet: one lease for the job, handed to every task as a Swarm secret; a replicated job of
// codexbox containers; progress per node until every task has finished; each task's artifacts
// fetched from the broker and unpacked with the safe extractor. Service, secret, config, the
// uploads and the lease are gone afterwards, on every path.
export async function runFleet(options: FleetRunOptions, deps: FleetDeps): Promise<FleetResult> {
  await deps.swarm.assertManager();
  await openRunDirectory(options.artifactsDir);
  const cleanup = new CleanupStack();
  try {
    const { serviceId, lease, mode } = await launch(options, deps, cleanup);
    const tasks = await waitForTasks(serviceId, mode, options, deps);
    return await collect(lease, tasks, options, deps);
  } finally {
    await cleanup.runAll((step, error) =>
      deps.log(`warning: could not ${step}: ${(error as Error).message}`),
    );
  }
}

async function launch(options: FleetRunOptions, deps: FleetDeps, cleanup: CleanupStack) {
  const { swarm } = deps;
  const base = `codexbox-fleet-${options.name}`;
  const labels = { 'io.codexbox.fleet': options.name };
  const lease = await issueFleetLease(
    options.broker,
    `fleet-${options.name}`,
    options.replicas,
    options.leaseTtlMs,
  );
  deps.redactor.register(new Secret(lease.file.lease));
  cleanup.defer('end the fleet lease at the broker', () => endFleetLease(options.broker, lease.id));
  const secretId = await swarm.createSecret(`${base}-lease`, JSON.stringify(lease.file), labels);
  cleanup.defer('remove the lease secret', () => swarm.removeSecret(secretId));
  let config: { id: string; name: string } | undefined;
  if (options.configText !== undefined) {
    config = {
      id: await swarm.createConfig(`${base}-config`, options.configText, labels),
      name: `${base}-config`,
    };
    const configId = config.id;
    cleanup.defer('remove the config', () => swarm.removeConfig(configId));
  }
  const mode = await swarm.fleetMode();
  const serviceId = await swarm.createService(
    fleetServiceSpec({
      mode,
      ...options,
      name: base,
      secret: { id: secretId, name: `${base}-lease` },
      config,
      labels,
    }),
  );
  cleanup.defer('remove the fleet service', async () => {
    await swarm.removeService(serviceId);
    await waitForRemoval(serviceId, deps);
  });
  deps.log(
    `fleet ${options.name}: ${options.replicas} tasks (at most ${options.maxConcurrent} at once), service ${base}`,
  );
  const how = mode === 'job' ? 'a replicated job' : 'a replicated service, scaled up as tasks finish';
  deps.log(`fleet ${options.name}: ${how}`);
  return { serviceId, lease, mode };
}

async function waitForTasks(
  serviceId: string,
  mode: FleetMode,
  options: FleetRunOptions,
  deps: FleetDeps,
): Promise<TaskView[]> {
  const names = await deps.swarm.nodeNames();
  // The lease ends then: a task still running cannot refresh or send its artifacts any more.
  const deadline = Date.now() + options.leaseTtlMs;
  let last = '';
  for (;;) {
    if (deps.signal?.aborted) throw new FleetInterrupted(String(deps.signal.reason ?? 'interrupted'));
    const tasks = await deps.swarm.tasks(serviceId);
    const line = formatProgress(countByNode(tasks, names), options.replicas);
    if (line !== last) deps.log(`fleet ${options.name}: ${line}`);
    last = line;
    const finished = tasks.filter((task) => finishedStates.has(task.state));
    if (finished.length >= options.replicas) return finished;
    if (mode === 'stepped') await stepUp(serviceId, tasks.length, finished.length, options, deps);
    if (Date.now() > deadline) {
      deps.log(
        `fleet ${options.name}: the lease expired with ${tasks.length - finished.length} tasks unfinished`,
      );
      return tasks;
    }
    await sleep(options.pollMs ?? 1000, undefined, { signal: deps.signal }).catch(() => undefined);
  }
}

// At most P tasks unfinished: one more slot for each that finished, up to N.
async function stepUp(
  serviceId: string,
  started: number,
  finished: number,
  options: FleetRunOptions,
  deps: FleetDeps,
): Promise<void> {
  const wanted = Math.min(options.replicas, finished + options.maxConcurrent);
  if (wanted > started) await deps.swarm.scaleService(serviceId, wanted);
}

// Nodes remove a removed service's containers on their own time: wait (bounded) until the
// manager has no task of it left, so nothing of the fleet outlives the command.
async function waitForRemoval(serviceId: string, deps: FleetDeps): Promise<void> {
  for (let attempt = 0; attempt < 60; attempt++) {
    if ((await deps.swarm.tasks(serviceId)).length === 0) return;
    await sleep(500);
  }
  deps.log('warning: some nodes have not removed their fleet containers yet (docker service ps shows them)');
}

async function collect(
  lease: FleetLease,
  tasks: TaskView[],
  options: FleetRunOptions,
  deps: FleetDeps,
): Promise<FleetResult> {
  const names = await deps.swarm.nodeNames();
  const uploads = await listUploads(options.broker, lease.id);
  const reports: TaskReport[] = [];
  for (const task of tasks) {
    const files = uploads.has(task.id) ? await fetchOrReport(lease, task.id, options, deps) : null;
    reports.push({
      task: task.id,
      node: names.get(task.nodeId) ?? task.nodeId,
      state: task.state,
      exitCode: task.exitCode,
      message: deps.redactor.redact(task.message),
      artifactFiles: files,
    });
  }
  const succeeded = tasks.filter(taskSucceeded).length;
  const result = {
    name: options.name,
    tasks: reports,
    succeeded,
    failed: tasks.length - succeeded,
    artifactsDir: options.artifactsDir,
  };
  await writeFile(join(options.artifactsDir, 'fleet.json'), `${JSON.stringify(result, null, 2)}\n`, {
    mode: 0o600,
  });
  return result;
}

// One task's bad archive (too many entries, cut off) costs that task its artifacts, not the fleet.
async function fetchOrReport(
  lease: FleetLease,
  task: string,
  options: FleetRunOptions,
  deps: FleetDeps,
): Promise<number | null> {
  try {
    return await fetchTaskArtifacts(lease, task, options, deps);
  } catch (error) {
    deps.log(
      `fleet ${options.name}: task ${task}: artifacts not unpacked (${deps.redactor.redact((error as Error).message)})`,
    );
    return null;
  }
}

async function fetchTaskArtifacts(
  lease: FleetLease,
  task: string,
  options: FleetRunOptions,
  deps: FleetDeps,
): Promise<number> {
  const response = await openUpload(options.broker, lease.id, task);
  if (response.statusCode !== 200) {
    response.resume();
    deps.log(
      `fleet ${options.name}: task ${task}: the broker did not hand over its artifacts (HTTP ${response.statusCode})`,
    );
    return 0;
  }
  // The entrypoint's `tar -C /artifacts .`: entries are ./NAME.
  const directory = await openRunDirectory(join(options.artifactsDir, `task-${task}`));
  const extracted = await extractUntrustedArchive(response, directory);
  if (extracted.skipped.length > 0)
    deps.log(
      `fleet ${options.name}: task ${task}: skipped ${extracted.skipped.length} links or unsafe entries`,
    );
  return extracted.files;
}
