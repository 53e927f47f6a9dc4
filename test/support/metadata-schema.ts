import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { Ajv2020 } from 'ajv/dist/2020.js';

const schema = JSON.parse(
  readFileSync(join(import.meta.dirname, '../../src/common/auth-metadata.schema.json'), 'utf8'),
);
const validate = new Ajv2020({ strict: true, validateFormats: false, allErrors: true }).compile(schema);

// The schema errors for a metadata document, or [] when it conforms.
export function metadataSchemaErrors(metadata: unknown): string[] {
  return validate(metadata)
    ? []
    : (validate.errors ?? []).map((error) => `${error.instancePath} ${error.message}`);
}
