import { chmod, chown, mkdir, symlink, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { execa } from 'execa';
import { artifactsDir, testLabel } from './harness.js';

// A stand-in for the kubelet, enough to run the pods `codexbox kube render` writes with plain
// Docker: each emptyDir is a root-owned 0777 directory (as the kubelet makes it); a claim is a
// host directory given to the pod's fsGroup; a Secret volume is the kubelet's layout (KEY ->
// ..data/KEY, files root-owned with defaultMode, group fsGroup), and a secret mounted by subPath is
// the key's file bind-mounted alone; the securityContext becomes --user, --group-add, --read-only,
// --cap-drop/--cap-add and no-new-privileges; $(VAR) in args is expanded as Kubernetes does.
// No cluster is involved.

// biome-ignore lint/suspicious/noExplicitAny: plain Kubernetes objects, read as the kubelet would
type Loose = any;

export interface EmulatedPodOptions {
  // The pod's completion index (its batch.kubernetes.io/job-completion-index annotation).
  index?: number;
  // The data of the Secrets that exist, by name (base64 values, as in a Secret's data).
  secrets: Record<string, Record<string, string>>;
  // The host directory behind each PersistentVolumeClaim, by claim name.
  claims?: Record<string, string>;
  network: string;
  // Docker-only additions: variables the test needs (NO_PROXY, a mock upstream).
  extraEnv?: string[];
}

export interface RunOptions {
  // Extra -v mounts.
  volumes?: string[];
  // Start it in the background under this name, reachable on the network as `alias` (a Service).
  detach?: { name: string; alias: string };
}

export class EmulatedPod {
  // The host directory behind each emptyDir, by volume name.
  readonly emptyDirs = new Map<string, string>();
  readonly #spec: Loose;
  readonly #options: EmulatedPodOptions;

  private constructor(spec: Loose, options: EmulatedPodOptions) {
    this.#spec = spec;
    this.#options = options;
  }

  static async create(spec: Loose, options: EmulatedPodOptions): Promise<EmulatedPod> {
    const pod = new EmulatedPod(spec, options);
    for (const volume of spec.volumes.filter((entry: Loose) => entry.emptyDir)) {
      const dir = await artifactsDir();
      await chmod(dir, 0o777);
      pod.emptyDirs.set(volume.name, dir);
    }
    const fsGroup = spec.securityContext?.fsGroup;
    for (const dir of Object.values(options.claims ?? {})) {
      if (fsGroup === undefined) continue;
      await chown(dir, 0, fsGroup);
      await chmod(dir, 0o2775);
    }
    return pod;
  }

  #env(container: Loose): Record<string, string> {
    const annotation = String(this.#options.index ?? '');
    const entries = (container.env ?? []).map((entry: Loose) => [
      entry.name,
      entry.value ??
        (entry.valueFrom?.fieldRef?.fieldPath.includes('job-completion-index') ? annotation : ''),
    ]);
    return Object.fromEntries(entries);
  }

  async #mountArgs(container: Loose, env: Record<string, string>): Promise<string[]> {
    const args: string[] = [];
    for (const mount of container.volumeMounts ?? []) {
      const volume = this.#spec.volumes.find((entry: Loose) => entry.name === mount.name);
      const readOnly = mount.readOnly ? ':ro' : '';
      let source: string;
      if (volume.emptyDir) source = this.emptyDirs.get(mount.name)!;
      else if (volume.persistentVolumeClaim)
        source = this.#options.claims![volume.persistentVolumeClaim.claimName]!;
      else if (volume.secret && (mount.subPath || mount.subPathExpr))
        source = await this.#secretFile(volume.secret, mount.subPath ?? expand(mount.subPathExpr, env));
      else if (volume.secret) source = await this.#secretVolume(volume.secret);
      else throw new Error(`the emulated kubelet has no ${Object.keys(volume).join()} volumes`);
      args.push('-v', `${source}:${mount.mountPath}${readOnly}`);
    }
    return args;
  }

  #secretData(secret: Loose): Record<string, string> {
    const data = this.#options.secrets[secret.secretName];
    if (!data && !secret.optional) throw new Error(`no Secret ${secret.secretName}`);
    return data ?? {};
  }

  // One key of a Secret, as a subPath mount binds it: the file itself.
  async #secretFile(secret: Loose, key: string): Promise<string> {
    const data = this.#secretData(secret)[key];
    if (data === undefined) throw new Error(`Secret ${secret.secretName} has no key ${key}`);
    const file = join(await artifactsDir(), key);
    await writeFile(file, Buffer.from(data, 'base64'));
    await this.#ownSecretFile(file, secret.defaultMode);
    return file;
  }

  // A whole Secret volume, as the kubelet's atomic writer lays it out.
  async #secretVolume(secret: Loose): Promise<string> {
    const dir = await artifactsDir();
    await chmod(dir, 0o1777);
    const payload = '..2026_01_01_00_00_00.000000001';
    await mkdir(join(dir, payload), { mode: 0o755 });
    await symlink(payload, join(dir, '..data'));
    for (const [key, data] of Object.entries(this.#secretData(secret))) {
      await writeFile(join(dir, payload, key), Buffer.from(data, 'base64'));
      await this.#ownSecretFile(join(dir, payload, key), secret.defaultMode);
      await symlink(`..data/${key}`, join(dir, key));
    }
    return dir;
  }

  // Root's, with defaultMode; with an fsGroup, that group's and readable by it.
  async #ownSecretFile(file: string, mode: number): Promise<void> {
    const fsGroup = this.#spec.securityContext?.fsGroup;
    await chown(file, 0, fsGroup ?? 0);
    await chmod(file, fsGroup === undefined ? mode : mode | 0o040);
  }

  #securityArgs(container: Loose): string[] {
    const pod = this.#spec.securityContext ?? {};
    const security = container.securityContext ?? {};
    const user = security.runAsUser ?? pod.runAsUser;
    const args: string[] = [];
    if (user !== undefined) args.push('--user', `${user}:${security.runAsGroup ?? pod.runAsGroup ?? user}`);
    if (pod.fsGroup !== undefined) args.push('--group-add', String(pod.fsGroup));
    if (security.readOnlyRootFilesystem) args.push('--read-only');
    if (security.allowPrivilegeEscalation === false) args.push('--security-opt', 'no-new-privileges');
    for (const cap of security.capabilities?.drop ?? []) args.push('--cap-drop', cap);
    for (const cap of security.capabilities?.add ?? []) args.push('--cap-add', cap);
    return args;
  }

  // Runs one container of the pod, as `docker run` would: to its end, or in the background.
  async run(container: Loose, options: RunOptions = {}) {
    const env = this.#env(container);
    const args = ['run', '--label', testLabel, '--network', this.#options.network];
    if (options.detach)
      args.push('-d', '--name', options.detach.name, '--network-alias', options.detach.alias);
    else args.push('--rm');
    args.push(...this.#securityArgs(container));
    for (const [name, value] of Object.entries(env)) args.push('-e', `${name}=${value}`);
    for (const variable of this.#options.extraEnv ?? []) args.push('-e', variable);
    args.push(...(await this.#mountArgs(container, env)));
    for (const volume of options.volumes ?? []) args.push('-v', volume);
    const command: string[] = container.command ?? [];
    if (command.length > 0) args.push('--entrypoint', command[0]!);
    args.push(
      container.image,
      ...command.slice(1),
      ...(container.args ?? []).map((arg: string) => expand(arg, env)),
    );
    return execa('docker', args, { reject: false, timeout: 180_000, stdin: 'ignore' });
  }
}

// Kubernetes' expansion of container args: $$ is $, $(NAME) is NAME's value when it is defined.
export function expand(text: string, env: Record<string, string>): string {
  return text.replace(/\$\$|\$\(([A-Za-z_][A-Za-z0-9_]*)\)/g, (match, name: string | undefined) =>
    match === '$$' ? '$' : (env[name!] ?? match),
  );
}
