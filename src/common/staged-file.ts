// One file staged into a container's CODEX_HOME or vault (the vault's files are secrets).
export interface StagedFile {
  name: string;
  content: string;
}
