import { execFileSync } from 'node:child_process';

// Process tests run the built entrypoint bundle, as the image does.
export default function setup(): void {
  execFileSync('node', ['scripts/bundle.mjs', '--image-only'], { stdio: 'inherit' });
}
