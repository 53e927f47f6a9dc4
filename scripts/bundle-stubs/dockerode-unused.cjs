// Stands in for what dockerode loads only for builds from a context directory (tar-fs 2,
// @balena/dockerignore) and BuildKit sessions (uuid): codexbox hands dockerode a ready tar stream
// and uses the classic builder, so none of it runs; the CLI loads ~20 KB less on every command.
function unused() {
  throw new Error(
    'codexbox does not bundle this part of dockerode (context-directory builds, BuildKit sessions)',
  );
}
module.exports = Object.assign(unused, { pack: unused, extract: unused, v4: unused });
