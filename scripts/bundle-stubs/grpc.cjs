// Stands in for gRPC in the bundled CLI: dockerode loads it only for BuildKit sessions, which
// codexbox never requests (it builds with the classic builder API).
module.exports = {};
