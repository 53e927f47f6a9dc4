import { describe, expect, it } from 'vitest';
import { codexboxVersion } from '../../src/common/version.js';
import { buildImage, defaultImage, localAlias, versionedImage } from '../../src/docker/build-image.js';
import { FakeDocker } from '../support/fake-docker.js';

describe('codexbox build', () => {
  it('names the image for both versions and keeps codexbox:local pointing at it', async () => {
    expect(defaultImage).toBe(`codexbox:${codexboxVersion}-codex0.169.0`);
    expect(versionedImage('0.170.0')).toBe(`codexbox:${codexboxVersion}-codex0.170.0`);
    const docker = new FakeDocker();
    docker.images.clear();
    expect(await buildImage(docker)).toBe(defaultImage);
    expect(docker.images.has(localAlias)).toBe(true);
  });

  it('does nothing the second time, unless forced or something changed (codex version)', async () => {
    const docker = new FakeDocker();
    docker.images.clear();
    const builds = () => docker.calls.filter((call) => call.method === 'buildImage').length;
    await buildImage(docker);
    await buildImage(docker);
    expect(builds()).toBe(1);
    await buildImage(docker, { force: true });
    expect(builds()).toBe(2);
    await buildImage(docker, { codexVersion: '0.170.0' });
    expect(builds()).toBe(3);
    await buildImage(docker, { baseImage: 'other-base:1' });
    expect(builds()).toBe(4);
  });
});
