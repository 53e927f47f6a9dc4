// Stands in for readable-stream (a copy of Node 10's streams) in the bundled CLI: its users here,
// docker-modem and bl, take Duplex from it, which Node's own stream module has. What
// readable-stream itself does with READABLE_STREAM=disable, without its 40 KB.
const {
  Readable,
  Writable,
  Duplex,
  Transform,
  PassThrough,
  Stream,
  finished,
  pipeline,
} = require('node:stream');

module.exports = { Readable, Writable, Duplex, Transform, PassThrough, Stream, finished, pipeline };
