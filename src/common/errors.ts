import { ExitCode } from './exit-codes.js';

export interface ErrorDetails {
  hint: string;
  cause?: unknown;
}

// Every failure codexbox reports: a stable code, the process exit code, and the next step.
// Messages name fields and files, never the values they hold.
export abstract class CodexboxError extends Error {
  abstract readonly code: string;
  abstract readonly exitCode: number;
  readonly hint: string;

  constructor(message: string, details: ErrorDetails) {
    super(message, details.cause === undefined ? undefined : { cause: details.cause });
    this.name = new.target.name;
    this.hint = details.hint;
  }
}

export class UsageError extends CodexboxError {
  readonly code = 'ERR_USAGE';
  readonly exitCode = ExitCode.usage;
}

export class ConflictingSourcesError extends CodexboxError {
  readonly code = 'ERR_CONFLICTING_SOURCES';
  readonly exitCode = ExitCode.usage;
}

export class InvalidCredentialsError extends CodexboxError {
  readonly code = 'ERR_INVALID_CREDENTIALS';
  readonly exitCode = ExitCode.dataError;
}

export class UnsafeFileError extends CodexboxError {
  readonly code = 'ERR_UNSAFE_FILE';
  readonly exitCode = ExitCode.dataError;
}

export class CredentialsNotFoundError extends CodexboxError {
  readonly code = 'ERR_CREDENTIALS_NOT_FOUND';
  readonly exitCode = ExitCode.noInput;
}

export class DockerUnavailableError extends CodexboxError {
  readonly code = 'ERR_DOCKER_UNAVAILABLE';
  readonly exitCode = ExitCode.unavailable;
}

export class ImageNotFoundError extends CodexboxError {
  readonly code = 'ERR_IMAGE_NOT_FOUND';
  readonly exitCode = ExitCode.unavailable;
}

export class DockerOperationError extends CodexboxError {
  readonly code = 'ERR_DOCKER';
  readonly exitCode = ExitCode.unavailable;
}

export class DockerConflictError extends CodexboxError {
  readonly code = 'ERR_DOCKER_CONFLICT';
  readonly exitCode = ExitCode.temporaryFailure;
}

export class BrokerUnavailableError extends CodexboxError {
  readonly code = 'ERR_BROKER_UNAVAILABLE';
  readonly exitCode = ExitCode.unavailable;
}

export class ImageBuildError extends CodexboxError {
  readonly code = 'ERR_IMAGE_BUILD';
  readonly exitCode = ExitCode.unavailable;
}

export class InternalError extends CodexboxError {
  readonly code = 'ERR_INTERNAL';
  readonly exitCode = ExitCode.internal;
}

export class FileIoError extends CodexboxError {
  readonly code = 'ERR_IO';
  readonly exitCode = ExitCode.ioError;
}

// The run's artifacts directory stopped being the directory codexbox created (a symlink or another
// directory took its place, or one below it): nothing more is written through that path.
export class ArtifactsRedirectedError extends CodexboxError {
  readonly code = 'ERR_ARTIFACTS_REDIRECTED';
  readonly exitCode = ExitCode.cannotCreate;
}

// --artifacts names something codexbox will not write into: a symlink, a non-empty directory,
// a directory of another user, or not a directory at all.
export class ArtifactsDirectoryUnusableError extends CodexboxError {
  readonly code = 'ERR_ARTIFACTS_DIR_UNUSABLE';
  readonly exitCode = ExitCode.cannotCreate;
}

export class RefreshUnavailableError extends CodexboxError {
  readonly code = 'ERR_REFRESH_UNAVAILABLE';
  readonly exitCode = ExitCode.temporaryFailure;
}

export class LockTimeoutError extends CodexboxError {
  readonly code = 'ERR_LOCK_TIMEOUT';
  readonly exitCode = ExitCode.temporaryFailure;
}

export class ReloginRequiredError extends CodexboxError {
  readonly code = 'ERR_RELOGIN_REQUIRED';
  readonly exitCode = ExitCode.permissionDenied;
  // The OAuth error code behind it (refresh_token_reused, …), when the server gave one.
  oauthCode?: string;
}

export class CredentialTooShortError extends CodexboxError {
  readonly code = 'ERR_CREDENTIAL_TOO_SHORT';
  readonly exitCode = ExitCode.permissionDenied;
}

// A sealed credential that does not open with the key given: another key, or a changed file.
export class SealedCredentialRejectedError extends CodexboxError {
  readonly code = 'ERR_SEALED_CREDENTIAL_REJECTED';
  readonly exitCode = ExitCode.permissionDenied;
}

export class PermissionDeniedError extends CodexboxError {
  readonly code = 'ERR_PERMISSION_DENIED';
  readonly exitCode = ExitCode.permissionDenied;
}

export class RootOwnedWorkspaceError extends CodexboxError {
  readonly code = 'ERR_ROOT_OWNED_WORKSPACE';
  readonly exitCode = ExitCode.configuration;
}

export class ProviderChangedError extends CodexboxError {
  readonly code = 'ERR_PROVIDER_CHANGED';
  readonly exitCode = ExitCode.configuration;
}

export class CodexSandboxUnavailableError extends CodexboxError {
  readonly code = 'ERR_CODEX_SANDBOX_UNAVAILABLE';
  readonly exitCode = ExitCode.configuration;
}

// A credential with a refresh token where it would be shared (Harbor's auth file, given to every
// trial): refresh tokens are single-use, so the copies would log each other out.
export class RefreshTokenNotAcceptedError extends CodexboxError {
  readonly code = 'ERR_REFRESH_TOKEN_NOT_ACCEPTED';
  readonly exitCode = ExitCode.configuration;
}

export class InvalidConfigError extends CodexboxError {
  readonly code = 'ERR_INVALID_CONFIG';
  readonly exitCode = ExitCode.configuration;
}

// `codex login` in the image ended without a login to import (it failed, timed out or was stopped).
export class LoginFailedError extends CodexboxError {
  readonly code = 'ERR_LOGIN_FAILED';
  readonly exitCode = ExitCode.permissionDenied;
}

// `codexbox login` would replace an auth.json that holds a login: refused without --force.
export class ExistingLoginError extends CodexboxError {
  readonly code = 'ERR_LOGIN_EXISTS';
  readonly exitCode = ExitCode.cannotCreate;
}

// A port a container publishes is taken on the host (another program listens there).
export class PortInUseError extends CodexboxError {
  readonly code = 'ERR_PORT_IN_USE';
  readonly exitCode = ExitCode.temporaryFailure;
}

export function isCodexboxError(error: unknown): error is CodexboxError {
  return error instanceof CodexboxError;
}

// Anything that is not already a codexbox error is a bug: report it as internal (exit 70).
export function asCodexboxError(error: unknown, what: string): CodexboxError {
  return isCodexboxError(error)
    ? error
    : new InternalError(`${what} failed unexpectedly`, {
        hint: 'Report this with the container log.',
        cause: error,
      });
}

// The one line a user sees: message, then what to do next.
export function formatError(error: CodexboxError, program = 'codexbox'): string {
  return `${program}: ${error.message} (${error.code}). ${error.hint}`;
}

// `codexbox fleet run` needs a Swarm manager: this Docker engine is not one.
export class SwarmNotManagerError extends CodexboxError {
  readonly code = 'ERR_SWARM_NOT_MANAGER';
  readonly exitCode = ExitCode.unavailable;
}
