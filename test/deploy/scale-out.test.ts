/**
 * The scale-out deployment files parse and agree with each other and with the code:
 *  - docker/compose.yaml, profile scale-out: HAProxy mounts the shipped haproxy.cfg, whose servers
 *    are exactly the replica services on their PA_PORT; Prometheus scrapes every replica;
 *  - docker/k8s/scale-out/: the StatefulSet replicas (readiness /ready) behind an HAProxy
 *    Deployment whose haproxy.cfg is the shipped one with only the resolvers and server lines
 *    changed, servers named after the StatefulSet's pods; PodDisruptionBudgets select the pods;
 *  - docker/k8s/score-job.yaml: an Indexed Job whose pod I runs `score --shard I/N` (N =
 *    completions) into its own output file on a volume, with flags `pa-server score` has.
 */
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import YAML from 'yaml';
import { buildApp, type App } from '../../src/app.js';
import { buildCli } from '../../src/cli.js';
import { defaultConfig, validateConfig } from '../../src/config.js';
import { Metrics } from '../../src/metrics.js';
import { parseShard } from '../../src/offline/shard.js';
import { ScorerPool } from '../../src/pool.js';
import { TRAJECTORY_FORMATS } from '../../src/text/adapters.js';

const ROOT = path.resolve(__dirname, '../..');
const DOCKER = path.join(ROOT, 'docker');
const PORT = defaultConfig().port;
const read = (rel: string) => fs.readFileSync(path.join(DOCKER, rel), 'utf8');
const docs = (rel: string) => YAML.parseAllDocuments(read(rel)).map((d) => d.toJS());
const byKind = (all: any[], kind: string, name?: string) => all.find((d) => d.kind === kind && (name === undefined || d.metadata.name === name));

/** The uncommented lines of an HAProxy file, each trimmed. */
const cfgLines = (text: string) =>
  text
    .split('\n')
    .map((l) => l.replace(/#.*$/, '').trim())
    .filter(Boolean);
const serversOf = (text: string) =>
  cfgLines(text)
    .filter((l) => l.startsWith('server '))
    .map((l) => {
      const [, name, address] = l.split(/\s+/);
      return { name, address: address.replace(/^"|"$/g, '') };
    });
const bindPort = (text: string) => Number(/^bind\s+\S*:(\d+)$/m.exec(cfgLines(text).join('\n'))![1]);

const haveHaproxy = spawnSync('haproxy', ['-v'], { encoding: 'utf8' }).status === 0;
const commandOptions = (name: string) => buildCli().commands.find((c) => c.name() === name)!.options;

let app: App;
beforeAll(async () => {
  const config = validateConfig({ ...defaultConfig(), log_level: 'silent' });
  app = buildApp(config, new ScorerPool(config), { metrics: new Metrics({ defaultMetrics: false }) });
  await app.ready();
});
afterAll(async () => {
  await app?.close();
});
async function expectRoute(routePath: string) {
  const res = await app.inject({ method: 'GET', url: routePath });
  expect(res.statusCode, `GET ${routePath}`).not.toBe(404);
}

const SHIPPED = read('haproxy/haproxy.cfg');

describe('docker/compose.yaml, profile scale-out', () => {
  const compose = YAML.parse(read('compose.yaml'));
  const services = compose.services as Record<string, any>;
  const haproxy = services.haproxy;

  it('HAProxy mounts the shipped haproxy.cfg and publishes its bind port', () => {
    expect(haproxy.profiles).toEqual(['scale-out']);
    expect(haproxy.image).toMatch(/^haproxy:2\.6$/);
    const mount = (haproxy.volumes as string[]).find((v) => v.endsWith(':/usr/local/etc/haproxy/haproxy.cfg:ro'))!;
    expect(path.resolve(DOCKER, mount.split(':')[0])).toBe(path.join(DOCKER, 'haproxy', 'haproxy.cfg'));
    expect((haproxy.ports as string[]).map((p) => Number(p.split(':')[1]))).toEqual([bindPort(SHIPPED)]);
  });

  it('the configuration\'s servers are exactly the replica services, on their port; they share one image', async () => {
    const servers = serversOf(SHIPPED);
    expect(servers).toHaveLength(3);
    const replicas = servers.map((s) => s.address.split(':')[0]);
    expect(replicas).toEqual(['pa-server', 'pa-server-2', 'pa-server-3']);
    for (const [i, name] of replicas.entries()) {
      const service = services[name];
      expect(service, name).toBeDefined();
      expect(service.image).toBe(services['pa-server'].image);
      expect(service.command).toEqual(['serve']);
      expect(Number(servers[i].address.split(':')[1])).toBe(Number(service.environment.PA_PORT));
      expect(Number(service.environment.PA_PORT)).toBe(PORT);
      expect(service.environment.PA_HOST).toBe('0.0.0.0');
      expect(service.healthcheck.test.join(' ')).toContain(`127.0.0.1:${PORT}/health`);
      // The first replica is the default profile's service; the others come with the profile.
      expect(service.profiles, name).toEqual(name === 'pa-server' ? undefined : ['scale-out']);
    }
    expect([...haproxy.depends_on].sort()).toEqual([...replicas].sort());
    // What HAProxy checks is a route of the app.
    const check = /^http-check send meth GET uri (\S+)$/m.exec(cfgLines(SHIPPED).join('\n'))![1];
    expect(check).toBe('/ready');
    await expectRoute(check);
  });

  it('Prometheus scrapes every replica on /metrics', async () => {
    const prom = YAML.parse(read('prometheus.yml'));
    const targets = new Set<string>();
    for (const job of prom.scrape_configs) {
      expect(job.metrics_path).toBe('/metrics');
      for (const s of job.static_configs ?? []) for (const t of s.targets) targets.add(t);
      for (const d of job.dns_sd_configs ?? []) {
        expect(d.type).toBe('A');
        for (const n of d.names) targets.add(`${n}:${d.port}`);
      }
    }
    expect([...targets].sort()).toEqual(serversOf(SHIPPED).map((s) => s.address).sort());
    await expectRoute('/metrics');
  });

  it('the image HAProxy runs is the series that checks the file here', () => {
    if (!haveHaproxy) return; // haproxy.test.ts says why it is missing
    const version = /HAProxy version (\d+\.\d+)/.exec(spawnSync('haproxy', ['-v'], { encoding: 'utf8' }).stdout)![1];
    expect(haproxy.image).toBe(`haproxy:${version}`);
  });
});

describe('docker/k8s/scale-out', () => {
  const kustomization = YAML.parse(read('k8s/scale-out/kustomization.yaml'));
  const all = (kustomization.resources as string[]).flatMap((r) => docs(`k8s/scale-out/${r}`));
  const sts = byKind(all, 'StatefulSet');
  const headless = byKind(all, 'Service', sts.spec.serviceName);
  const server = sts.spec.template.spec.containers.find((c: any) => c.name === 'pa-server');
  const lb = byKind(all, 'Deployment', 'pa-haproxy');
  const lbContainer = lb.spec.template.spec.containers[0];
  const generator = kustomization.configMapGenerator.find((g: any) => g.name === 'pa-haproxy');
  const K8S_CFG = read(`k8s/scale-out/${generator.files[0]}`);

  /** The shipped file's directives without its resolvers section and server lines. */
  const core = (text: string) => {
    const lines = cfgLines(text);
    const out: string[] = [];
    let inResolvers = false;
    for (const l of lines) {
      if (/^(global|defaults|frontend|backend|listen|resolvers)\b/.test(l)) inResolvers = l.startsWith('resolvers');
      if (inResolvers || l.startsWith('server ')) continue;
      out.push(l.replace(/\bresolvers \S+/, 'resolvers X'));
    }
    return out;
  };

  it('HAProxy\'s configuration is the shipped one; only the resolvers and servers differ', () => {
    expect(generator.files).toEqual(['haproxy.cfg']);
    expect(core(K8S_CFG)).toEqual(core(SHIPPED));
    expect(cfgLines(K8S_CFG)).toContain('parse-resolv-conf');
  });

  it('its servers are the StatefulSet\'s pods by their stable DNS names, on the container port', () => {
    const port = server.ports.find((p: any) => p.name === 'http').containerPort;
    expect(port).toBe(PORT);
    const expected = Array.from({ length: sts.spec.replicas }, (_, i) => ({
      name: `${sts.metadata.name}-${i}`,
      address: `${sts.metadata.name}-${i}.${headless.metadata.name}.\${POD_NAMESPACE}.svc.cluster.local:${port}`,
    }));
    expect(serversOf(K8S_CFG)).toEqual(expected);
    expect(headless.spec.clusterIP).toBe('None');
    for (const [k, v] of Object.entries(headless.spec.selector)) expect(sts.spec.template.metadata.labels[k]).toBe(v);
    const ns = lbContainer.env.find((e: any) => e.name === 'POD_NAMESPACE');
    expect(ns.valueFrom.fieldRef.fieldPath).toBe('metadata.namespace');
  });

  it('haproxy -c accepts it (with a namespace set); the only warnings are names that do not resolve here', () => {
    if (!haveHaproxy) return;
    const file = path.join(fs.mkdtempSync(path.join(os.tmpdir(), 'k8s-haproxy-')), 'haproxy.cfg');
    fs.writeFileSync(file, K8S_CFG);
    const run = spawnSync('haproxy', ['-c', '-f', file], { encoding: 'utf8', env: { ...process.env, POD_NAMESPACE: 'scoring' } });
    expect(run.status, run.stderr).toBe(0);
    for (const w of (run.stdout + run.stderr).split('\n').filter((l) => l.includes('[WARNING]'))) {
      expect(w).toMatch(/could not resolve address 'pa-server-\d\.pa-server-headless\.scoring\.svc\.cluster\.local'/);
    }
    fs.rmSync(path.dirname(file), { recursive: true, force: true });
  });

  it('replicas: readiness on /ready, liveness on /health, serve options only', async () => {
    expect(sts.spec.replicas).toBeGreaterThanOrEqual(3);
    expect(server.readinessProbe.httpGet).toEqual({ path: '/ready', port: 'http' });
    expect(server.livenessProbe.httpGet).toEqual({ path: '/health', port: 'http' });
    for (const p of ['/ready', '/health']) await expectRoute(p);
    const serveEnv = new Set(commandOptions('serve').map((o) => o.envVar));
    const env = Object.fromEntries(server.env.map((e: any) => [e.name, e.value]));
    for (const name of Object.keys(env)) expect(serveEnv, name).toContain(name);
    expect(Number(env.PA_PORT)).toBe(PORT);
    expect(env.PA_HOST).toBe('0.0.0.0');
  });

  it('HAProxy: the ConfigMap is mounted where the image reads it; the Service fronts its bind port', () => {
    const volume = lb.spec.template.spec.volumes.find((v: any) => v.configMap?.name === generator.name);
    const mount = lbContainer.volumeMounts.find((m: any) => m.name === volume.name);
    expect(path.join(mount.mountPath, generator.files[0])).toBe('/usr/local/etc/haproxy/haproxy.cfg');
    expect(lbContainer.image).toBe(YAML.parse(read('compose.yaml')).services.haproxy.image);
    const http = lbContainer.ports.find((p: any) => p.name === 'http');
    expect(http.containerPort).toBe(bindPort(K8S_CFG));
    const service = byKind(all, 'Service', 'pa-haproxy');
    for (const [k, v] of Object.entries(service.spec.selector)) expect(lb.spec.template.metadata.labels[k]).toBe(v);
    expect(service.spec.ports[0].targetPort).toBe('http');
  });

  it('PodDisruptionBudgets keep the replicas and HAProxy available', () => {
    const pdbs = all.filter((d) => d.kind === 'PodDisruptionBudget');
    const covers = (workload: any) =>
      pdbs.find((p) => Object.entries(p.spec.selector.matchLabels).every(([k, v]) => workload.spec.template.metadata.labels[k] === v));
    const forReplicas = covers(sts);
    expect(forReplicas.spec.maxUnavailable).toBe(1);
    const forLb = covers(lb);
    expect(forLb.spec.minAvailable).toBeLessThan(lb.spec.replicas);
    expect(forLb.spec.minAvailable).toBeGreaterThanOrEqual(1);
  });
});

describe('docker/k8s/score-job.yaml', () => {
  const job = docs('k8s/score-job.yaml')[0];
  const pod = job.spec.template.spec;
  const container = pod.containers[0];
  const args: string[] = container.args;
  const arg = (flag: string) => args[args.indexOf(flag) + 1];
  const INDEX = '$(JOB_COMPLETION_INDEX)';

  it('an Indexed Job: pod I scores --shard I/N, N = completions, into its own output file', () => {
    expect(job.kind).toBe('Job');
    expect(job.spec.completionMode).toBe('Indexed');
    expect(pod.restartPolicy).toBe('Never');
    expect(args[0]).toBe('score');
    const n = job.spec.completions;
    expect(arg('--shard')).toBe(`${INDEX}/${n}`);
    for (let i = 0; i < n; i++) expect(parseShard(arg('--shard').replace(INDEX, String(i)))).toEqual({ index: i, count: n });
    const outputs = new Set(Array.from({ length: n }, (_, i) => arg('--output').replaceAll(INDEX, String(i))));
    expect(outputs.size).toBe(n);
    expect(job.spec.parallelism).toBeLessThanOrEqual(n);
  });

  it('reads from and writes to the volume: input read-only, output writable', () => {
    const mountOf = (p: string) => container.volumeMounts.find((m: any) => p === m.mountPath || p.startsWith(`${m.mountPath}/`));
    const input = mountOf(arg('--input'));
    const output = mountOf(arg('--output'));
    expect(input.readOnly).toBe(true);
    expect(output.readOnly ?? false).toBe(false);
    for (const m of [input, output]) expect(pod.volumes.find((v: any) => v.name === m.name).persistentVolumeClaim.claimName).toBeTruthy();
    // The file's own note evaluates the directory the shards are written to.
    expect(read('k8s/score-job.yaml')).toContain(`pa-server eval --scores ${path.posix.dirname(arg('--output'))} `);
  });

  it('every flag is a `pa-server score` option, every PA_* variable (commented ones too) one of its variables', () => {
    const options = commandOptions('score');
    const flags = new Set(options.map((o) => o.long));
    for (const a of args.filter((x) => x.startsWith('--'))) expect(flags, a).toContain(a);
    expect(TRAJECTORY_FORMATS).toContain(arg('--format'));
    const envs = new Set(options.map((o) => o.envVar).filter(Boolean));
    const named = [...read('k8s/score-job.yaml').matchAll(/\b(PA_[A-Z_]+)\b/g)].map((m) => m[1]);
    expect(named.length).toBeGreaterThan(0);
    for (const name of named) expect(envs, name).toContain(name);
  });
});
