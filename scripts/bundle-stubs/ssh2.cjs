// Stands in for ssh2 in the bundled CLI: docker-modem loads it for ssh:// Docker hosts, which
// codexbox does not support; the full SSH stack would add ~100 ms to every command's start.
class Client {
  constructor() {
    throw new Error(
      'codexbox does not support DOCKER_HOST=ssh://; forward the socket (ssh -L) and use unix:// or tcp://',
    );
  }
}
module.exports = { Client };
