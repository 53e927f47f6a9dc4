export { runCli } from './cli-main.js';
export { AuthDocument, type AuthMode, type ChatgptTokens, secretsOf } from './common/auth-document.js';
export { type AuthMetadata, summarizeIdentity, writeAuthMetadata } from './common/auth-metadata.js';
export { type DroppedKey, type SanitizedConfig, sanitizeConfig } from './common/config-sanitizer.js';
export {
  credentialPrecedence,
  type LocatedCredentials,
  locateCredentials,
} from './common/credential-sources.js';
export * from './common/errors.js';
export { ExitCode } from './common/exit-codes.js';
export { Redactor } from './common/redactor.js';
export { refreshTokens } from './common/refresh-client.js';
export { refreshUnderLock } from './common/refresh-under-lock.js';
export { Secret } from './common/secret.js';
export { prepareStagedCredential } from './common/staged-credential.js';
export { assessTokenHealth, needsRefresh } from './common/token-expiry.js';
export { type BuildImageOptions, buildImage, defaultImage } from './docker/build-image.js';
export type { ContainerSpec, DockerPort } from './docker/docker-port.js';
export { DockerodeAdapter } from './docker/dockerode-adapter.js';
export { type RunCodexOptions, type RunCodexResult, runCodex } from './run/run-codex.js';
export { stageCodexHome } from './run/stage-codex-home.js';
