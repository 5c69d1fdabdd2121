/**
 * GET /ui: the trajectory viewer (src/ui). Static files only, from two roots:
 *
 * - `src/ui/` under the package root: index.html, viewer.css and the bundled examples;
 * - the browser modules: `dist/src/ui/*.js` as compiled by `npm run build` when the server
 *   itself runs compiled, or, when it runs from source (tsx, vitest), `src/ui/*.ts` transpiled
 *   on request with TypeScript (a dev dependency, present whenever the sources run), so a dev
 *   server never serves JavaScript older than its sources.
 *
 * Requests are resolved against a fixed list of extensions and a name pattern that admits no
 * path separators other than one level of `examples/`, and the resolved path must stay inside
 * its root: no directory traversal.
 */
import fs from 'node:fs/promises';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import type { FastifyInstance, FastifyReply } from 'fastify';
import { PACKAGE_ROOT } from '../config.js';
import { ServiceError } from '../errors.js';

const STATIC_ROOT = path.join(PACKAGE_ROOT, 'src', 'ui');
const COMPILED_ROOT = path.join(PACKAGE_ROOT, 'dist', 'src', 'ui');
/** This module is running from its TypeScript source (tsx or vitest), not from dist/. */
const RUNNING_FROM_SOURCE = fileURLToPath(import.meta.url).endsWith('.ts');

const CONTENT_TYPES: Record<string, string> = {
  '.html': 'text/html; charset=utf-8',
  '.css': 'text/css; charset=utf-8',
  '.js': 'text/javascript; charset=utf-8',
  '.map': 'application/json; charset=utf-8',
  '.json': 'application/json; charset=utf-8',
  '.md': 'text/markdown; charset=utf-8',
  '.txt': 'text/plain; charset=utf-8',
  '.svg': 'image/svg+xml',
};

/** Top-level names (letters, digits, dash, underscore, dots) or one level under examples/. */
const ASSET_PATH = /^(examples\/)?[A-Za-z0-9_-][A-Za-z0-9._-]*$/;

/**
 * A page that only runs our own same-origin scripts and talks only to this service. Inline
 * styles are allowed for the computed card colours (style attributes set from script).
 */
const CSP = "default-src 'none'; script-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data:; connect-src 'self'; base-uri 'self'; form-action 'none'; frame-ancestors 'none'";

function notFound(rest: string): ServiceError {
  return new ServiceError(404, 'not_found', `no viewer file named "${rest}"`);
}

function inside(root: string, rest: string): string | null {
  const file = path.resolve(root, rest);
  return file.startsWith(root + path.sep) ? file : null;
}

async function readOrNull(file: string | null): Promise<Buffer | null> {
  if (file === null) return null;
  try {
    return await fs.readFile(file);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT' || (err as NodeJS.ErrnoException).code === 'EISDIR') return null;
    throw err;
  }
}

type Transpile = (source: string, fileName: string) => string;
let transpiler: Promise<Transpile> | undefined;

/** TypeScript's single-file transpiler, loaded on first use (only when running from source). */
function loadTranspiler(): Promise<Transpile> {
  transpiler ??= import('typescript').then(({ default: ts }) => (source: string, fileName: string) =>
    ts.transpileModule(source, {
      fileName,
      compilerOptions: { target: ts.ScriptTarget.ES2022, module: ts.ModuleKind.ES2022, sourceMap: false, inlineSourceMap: true, inlineSources: true },
    }).outputText,
  );
  return transpiler;
}

async function browserModule(rest: string): Promise<Buffer | string | null> {
  if (!rest.endsWith('.js') && !rest.endsWith('.js.map')) return null;
  if (RUNNING_FROM_SOURCE) {
    if (rest.endsWith('.map')) return null; // the transpiled module carries an inline map
    const sourceFile = inside(STATIC_ROOT, rest.replace(/\.js$/, '.ts'));
    const source = await readOrNull(sourceFile);
    if (source === null) return null;
    const transpile = await loadTranspiler();
    return transpile(source.toString('utf8'), sourceFile!);
  }
  return readOrNull(inside(COMPILED_ROOT, rest));
}

async function serveAsset(rest: string, reply: FastifyReply) {
  const extension = rest.endsWith('.js.map') ? '.map' : path.extname(rest);
  const contentType = CONTENT_TYPES[extension];
  if (!ASSET_PATH.test(rest) || rest.split('/').some((part) => part.startsWith('.')) || contentType === undefined) throw notFound(rest);
  // Sources are not assets: the browser gets the compiled modules, never the .ts files.
  const body = extension === '.js' || extension === '.map' ? await browserModule(rest) : await readOrNull(inside(STATIC_ROOT, rest));
  if (body === null) {
    if (extension === '.js' && !RUNNING_FROM_SOURCE && !(await readOrNull(path.join(COMPILED_ROOT, 'main.js')))) {
      throw new ServiceError(404, 'not_found', `the viewer's modules are not built (${COMPILED_ROOT} is empty); run \`npm run build\``);
    }
    throw notFound(rest);
  }
  reply.header('content-security-policy', CSP).header('x-content-type-options', 'nosniff').header('cache-control', 'no-cache').type(contentType);
  return body;
}

export function uiRoutes(app: FastifyInstance): void {
  const hidden = { schema: { hide: true } as object };
  // The page loads its modules and the API by relative URLs, so it must be addressed as a folder.
  app.get('/ui', hidden, async (request, reply) => {
    const query = request.url.includes('?') ? request.url.slice(request.url.indexOf('?')) : '';
    return reply.redirect(`ui/${query}`, 308);
  });
  app.get('/ui/', hidden, async (_request, reply) => serveAsset('index.html', reply));
  app.get('/ui/*', hidden, async (request, reply) => serveAsset((request.params as { '*': string })['*'], reply));
}
