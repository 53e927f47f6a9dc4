import { runEntrypoint } from './run-entrypoint.js';

process.exitCode = await runEntrypoint(process.argv.slice(2));
