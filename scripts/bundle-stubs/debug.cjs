// Stands in for `debug` in the bundled CLI: docker-modem logs its requests through it only when
// DEBUG=modem is set, and those lines may carry what codexbox copies into a container.
function debug() {
  const log = () => {};
  log.enabled = false;
  log.extend = debug;
  return log;
}
debug.enabled = () => false;
module.exports = debug;
