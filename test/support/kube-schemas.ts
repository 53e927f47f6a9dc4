// Kubernetes API schemas for two releases, from kubernetes-models (generated from each release's
// OpenAPI document; its validators are compiled by ajv). Those validators ignore fields they do not
// know, as the API server does, so `schemaProblems` also probes every field we write: a field
// the schema knows must fail validation once its value is replaced by one of the wrong type.
import * as apps127 from 'kubernetes-models-1.27/apps/v1';
import * as batch127 from 'kubernetes-models-1.27/batch/v1';
import * as networking127 from 'kubernetes-models-1.27/networking.k8s.io/v1';
import * as core127 from 'kubernetes-models-1.27/v1';
import * as apps134 from 'kubernetes-models-1.34/apps/v1';
import * as batch134 from 'kubernetes-models-1.34/batch/v1';
import * as networking134 from 'kubernetes-models-1.34/networking.k8s.io/v1';
import * as core134 from 'kubernetes-models-1.34/v1';

type ModelClass = new (data: object) => { validate(): void };

interface KubernetesRelease {
  version: string;
  models: Record<string, ModelClass>;
}

export const kubernetesReleases: KubernetesRelease[] = [
  {
    version: '1.27',
    models: {
      'v1/Secret': core127.Secret,
      'v1/Service': core127.Service,
      'v1/PersistentVolumeClaim': core127.PersistentVolumeClaim,
      'batch/v1/Job': batch127.Job,
      'apps/v1/Deployment': apps127.Deployment,
      'networking.k8s.io/v1/NetworkPolicy': networking127.NetworkPolicy,
    },
  },
  {
    version: '1.34',
    models: {
      'v1/Secret': core134.Secret,
      'v1/Service': core134.Service,
      'v1/PersistentVolumeClaim': core134.PersistentVolumeClaim,
      'batch/v1/Job': batch134.Job,
      'apps/v1/Deployment': apps134.Deployment,
      'networking.k8s.io/v1/NetworkPolicy': networking134.NetworkPolicy,
    },
  },
];

type Json = null | boolean | number | string | Json[] | { [key: string]: Json };

function validationError(model: ModelClass, object: Json): string | undefined {
  try {
    new model(object as object).validate();
    return undefined;
  } catch (error) {
    return (error as Error).message;
  }
}

function* fieldPaths(value: Json, path: (string | number)[] = []): Generator<(string | number)[]> {
  if (path.length > 0) yield path;
  if (Array.isArray(value))
    for (const [index, item] of value.entries()) yield* fieldPaths(item, [...path, index]);
  else if (value !== null && typeof value === 'object')
    for (const [key, item] of Object.entries(value)) yield* fieldPaths(item, [...path, key]);
}

// A value no schema type accepts in place of this one: an object for scalars, a string otherwise.
function wrongType(value: Json): Json {
  return value !== null && typeof value === 'object' ? 'wrong type' : { wrong: 'type' };
}

function withValue(object: Json, path: (string | number)[], value: Json): Json {
  const copy = structuredClone(object);
  let parent = copy as Record<string | number, Json>;
  for (const key of path.slice(0, -1)) parent = parent[key] as Record<string | number, Json>;
  parent[path.at(-1)!] = value;
  return copy;
}

// Every problem the release's schema finds in the object, and every field it does not know.
export function schemaProblems(
  release: KubernetesRelease,
  object: { apiVersion: string; kind: string },
): string[] {
  const model = release.models[`${object.apiVersion}/${object.kind}`];
  if (!model) return [`no ${object.apiVersion} ${object.kind} in Kubernetes ${release.version}`];
  const json = object as unknown as Json;
  const error = validationError(model, json);
  if (error) return [error];
  const unknown: string[] = [];
  for (const path of fieldPaths(json)) {
    const name = path.join('.');
    if (unknown.some((parent) => name.startsWith(`${parent}.`))) continue;
    const probed = withValue(json, path, wrongType(pathValue(json, path)));
    if (validationError(model, probed) === undefined) unknown.push(name);
  }
  return unknown.map((name) => `${name} is not in the Kubernetes ${release.version} schema`);
}

function pathValue(object: Json, path: (string | number)[]): Json {
  return path.reduce<Json>((value, key) => (value as Record<string | number, Json>)[key]!, object);
}
