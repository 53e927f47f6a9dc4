import { chmod, mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { execa } from 'execa';
import { artifactsDir, testLabel } from './harness.js';

// A stand-in for the kubelet, enough to run a pod that `codexbox kube render` wrote with plain
// Docker: each emptyDir is a root-owned 0777 directory (as the kubelet makes it), a secret
// mounted by subPath is the key's file bind-mounted alone (root-owned, defaultMode), the
// containers' securityContext becomes --user, --read-only, --cap-drop/--cap-add and
// no-new-privileges, and $(VAR) in args is expanded as Kubernetes does. No cluster is involved.

// biome-ignore lint/suspicious/noExplicitAny: plain Kubernetes objects, read as the kubelet would
type Loose = any;

export interface EmulatedPodOptions {
  // The pod's completion index (its batch.kubernetes.io/job-completion-index annotation).
  index: number;
  // The data of the Secrets the pod mounts, by Secret name (base64 values, as rendered).
  secrets: Record<string, Record<string, string>>;
  network: string;
  // Docker-only additions: variables the test needs (NO_PROXY for the network's gateway).
  extraEnv?: string[];
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
    return pod;
  }

  #env(container: Loose): Record<string, string> {
    const annotation = String(this.#options.index);
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
      if (volume.emptyDir) args.push('-v', `${this.emptyDirs.get(mount.name)}:${mount.mountPath}`);
      else if (volume.secret)
        args.push('-v', `${await this.#secretFile(volume.secret, mount, env)}:${mount.mountPath}:ro`);
      else throw new Error(`the emulated kubelet has no ${Object.keys(volume).join()} volumes`);
    }
    return args;
  }

  async #secretFile(secret: Loose, mount: Loose, env: Record<string, string>): Promise<string> {
    const key = mount.subPath ?? expand(mount.subPathExpr ?? '', env);
    const data = this.#options.secrets[secret.secretName]?.[key];
    if (!mount.subPath && !mount.subPathExpr) throw new Error('only subPath secret mounts are emulated');
    if (data === undefined) throw new Error(`Secret ${secret.secretName} has no key ${key}`);
    const dir = join(await artifactsDir(), secret.secretName);
    await mkdir(dir);
    const file = join(dir, key);
    await writeFile(file, Buffer.from(data, 'base64'), { mode: secret.defaultMode });
    await chmod(file, secret.defaultMode);
    return file;
  }

  // Runs one container of the pod to its end, as `docker run` would; `volumes` are extra -v mounts.
  async run(container: Loose, volumes: string[] = []) {
    const env = this.#env(container);
    const security = container.securityContext ?? {};
    const args = ['run', '--rm', '--label', testLabel, '--network', this.#options.network];
    if (security.runAsUser !== undefined) args.push('--user', `${security.runAsUser}:${security.runAsGroup}`);
    if (security.readOnlyRootFilesystem) args.push('--read-only');
    if (security.allowPrivilegeEscalation === false) args.push('--security-opt', 'no-new-privileges');
    for (const cap of security.capabilities?.drop ?? []) args.push('--cap-drop', cap);
    for (const cap of security.capabilities?.add ?? []) args.push('--cap-add', cap);
    for (const [name, value] of Object.entries(env)) args.push('-e', `${name}=${value}`);
    for (const variable of this.#options.extraEnv ?? []) args.push('-e', variable);
    args.push(...(await this.#mountArgs(container, env)), ...volumes.flatMap((volume) => ['-v', volume]));
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
