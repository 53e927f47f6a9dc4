import { runStage } from './run-stage.js';

process.exitCode = await runStage(process.argv.slice(2));
