// undici as a namespace with its named exports. Bundled with code splitting, a dynamic import of
// this CommonJS package may come back as { default: module.exports } only.
export async function loadUndici(): Promise<typeof import('undici')> {
  const loaded = (await import('undici')) as typeof import('undici') & { default?: typeof import('undici') };
  return typeof loaded.EnvHttpProxyAgent === 'function' ? loaded : (loaded.default ?? loaded);
}
