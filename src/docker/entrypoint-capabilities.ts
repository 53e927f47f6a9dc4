// What the entrypoint needs as root: fix ownership, read the run user's files, drop privileges,
// signal codex and end the agent's leftovers. Nothing else — for `codexbox run`, login, fleet
// tasks and Kubernetes pods alike.
export const entrypointCapabilities = ['CHOWN', 'DAC_OVERRIDE', 'FOWNER', 'SETUID', 'SETGID', 'KILL'];
