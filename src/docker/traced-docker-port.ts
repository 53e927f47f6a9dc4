import type { Trace } from '../run/trace.js';
import type { DockerPort } from './docker-port.js';

// The path a copy goes to or comes from is worth seeing; no other argument is printed.
function detail(method: string, args: unknown[]): string {
  if ((method === 'putArchive' || method === 'getArchive') && typeof args[1] === 'string')
    return ` ${args[1]}`;
  return '';
}

// Every Docker API call, timed as a trace step named after the port's method.
export function tracedDockerPort(docker: DockerPort, trace: Trace): DockerPort {
  return new Proxy(docker, {
    get(target, property, receiver) {
      const value: unknown = Reflect.get(target, property, receiver);
      if (typeof value !== 'function') return value;
      const method = String(property);
      return (...args: unknown[]) =>
        trace.span(`docker ${method}${detail(method, args)}`, async () => value.apply(target, args));
    },
  });
}
