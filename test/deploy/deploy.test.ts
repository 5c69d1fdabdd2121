/**
 * docker/compose.yaml, docker/prometheus.yml, the Grafana provisioning and dashboard, and the
 * docker/k8s manifests parse, and agree with the code: the port is the default of
 * src/config.ts, probe and scrape paths are routes of the app, every PA_* variable is an option
 * of `pa-server serve`, every metric a query names is in the Metrics registry (with the labels
 * it groups by), image names and tags match each other and package.json.
 */
import fs from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import YAML from 'yaml';
import { buildApp, type App } from '../../src/app.js';
import { buildCli } from '../../src/cli.js';
import { defaultConfig, validateConfig } from '../../src/config.js';
import { Metrics } from '../../src/metrics.js';
import { ScorerPool } from '../../src/pool.js';

const ROOT = path.resolve(__dirname, '../..');
const DOCKER = path.join(ROOT, 'docker');
const PORT = defaultConfig().port;
const VERSION: string = JSON.parse(fs.readFileSync(path.join(ROOT, 'package.json'), 'utf8')).version;
const IMAGE = `progress-advantage-server:${VERSION}`;

const readYaml = (rel: string) => YAML.parse(fs.readFileSync(path.join(DOCKER, rel), 'utf8'));
const readYamlDocs = (rel: string) => YAML.parseAllDocuments(fs.readFileSync(path.join(DOCKER, rel), 'utf8')).map((d) => d.toJS());

/** Metric name → label names, from a fresh registry (default process metrics included). */
async function registryLabels(): Promise<Map<string, string[]>> {
  const metrics = new Metrics();
  const json = await metrics.registry.getMetricsAsJSON();
  return new Map(
    json.map((m) => [m.name, [...new Set(m.values.flatMap((v) => Object.keys(v.labels ?? {})))].concat((m as any).labelNames ?? [])]),
  );
}
/** The pa_ instruments of src/metrics.ts: name → label names and kind (Counter, Gauge, Histogram). */
const instruments = Object.values(new Metrics({ defaultMetrics: false })).filter(
  (v): v is { name: string; labelNames: string[] } => typeof v === 'object' && v !== null && 'name' in v && 'labelNames' in v,
);
const declaredLabels = new Map(instruments.map((v) => [v.name, [...v.labelNames]]));
const instrumentKind = new Map(instruments.map((v) => [v.name, v.constructor.name]));

/** The option environment variables of `pa-server serve`. */
const serveEnv = new Set(
  buildCli()
    .commands.find((c) => c.name() === 'serve')!
    .options.map((o) => o.envVar)
    .filter(Boolean),
);

let app: App;
beforeAll(async () => {
  const config = validateConfig({ ...defaultConfig(), log_level: 'silent' });
  app = buildApp(config, new ScorerPool(config), { metrics: new Metrics({ defaultMetrics: false }) });
  await app.ready();
});
afterAll(async () => {
  await app?.close();
});

/** A GET route the app serves (any status but 404; the pool is not loaded, so /ready is 503). */
async function expectRoute(routePath: string) {
  const res = await app.inject({ method: 'GET', url: routePath });
  expect(res.statusCode, `GET ${routePath}`).not.toBe(404);
}

/** pa_* names in a PromQL expression, with _bucket/_sum/_count mapped to their histogram. */
function metricNames(expr: string): { name: string; suffix: string }[] {
  return [...expr.matchAll(/\b(pa_[a-z0-9_]+?)(_bucket|_sum|_count)?\b(?=[\s[{)]|$)/g)].map((m) => ({ name: m[1], suffix: m[2] ?? '' }));
}

function byLabels(expr: string): string[] {
  return [...expr.matchAll(/\bby\s*\(([^)]*)\)/g)].flatMap((m) => m[1].split(',').map((s) => s.trim()).filter(Boolean));
}

describe('docker/compose.yaml', () => {
  const compose = readYaml('compose.yaml');
  const service = compose.services['pa-server'];

  it('builds the Dockerfile and publishes the default port', () => {
    expect(service.image).toBe(IMAGE);
    expect(fs.existsSync(path.join(DOCKER, service.build.context, service.build.dockerfile))).toBe(true);
    expect(service.ports).toEqual([`${PORT}:${PORT}`]);
    expect(Number(service.environment.PA_PORT)).toBe(PORT);
    expect(service.environment.PA_HOST).toBe('0.0.0.0');
  });

  it('every PA_* variable it sets (or documents in a comment) is a serve option', () => {
    const text = fs.readFileSync(path.join(DOCKER, 'compose.yaml'), 'utf8');
    const named = [...text.matchAll(/\b(PA_[A-Z_]+)\b/g)].map((m) => m[1]);
    expect(named.length).toBeGreaterThan(3);
    for (const name of named) expect(serveEnv, name).toContain(name);
  });

  it('the health check asks /health on the service port', async () => {
    const check = service.healthcheck.test.join(' ');
    expect(check).toContain(`127.0.0.1:${PORT}/health`);
    await expectRoute('/health');
  });

  it('Prometheus scrapes the service; Grafana reads Prometheus; mounted files exist', async () => {
    const prom = readYaml('prometheus.yml');
    const job = prom.scrape_configs.find((j: any) => j.job_name === 'pa-server');
    expect(job.static_configs[0].targets).toEqual([`pa-server:${PORT}`]);
    expect(job.metrics_path).toBe('/metrics');
    await expectRoute(job.metrics_path);

    for (const name of ['prometheus', 'grafana']) {
      for (const volume of compose.services[name].volumes as string[]) {
        const hostPath = volume.split(':')[0];
        expect(fs.existsSync(path.join(DOCKER, hostPath)), `${name} mounts ${hostPath}`).toBe(true);
      }
    }
    expect(compose.services.prometheus.volumes).toContain('./prometheus.yml:/etc/prometheus/prometheus.yml:ro');

    const datasource = readYaml('grafana/provisioning/datasources/prometheus.yaml').datasources[0];
    expect(datasource.type).toBe('prometheus');
    const promPort = (compose.services.prometheus.ports as string[])[0].split(':')[1];
    expect(datasource.url).toBe(`http://prometheus:${promPort}`);

    const provider = readYaml('grafana/provisioning/dashboards/pa-server.yaml').providers[0];
    const dashboardsMount = (compose.services.grafana.volumes as string[]).find((v) => v.split(':')[1] === provider.options.path);
    expect(dashboardsMount, 'the dashboard provider path is a mounted folder').toBeDefined();
    expect(fs.existsSync(path.join(DOCKER, dashboardsMount!.split(':')[0], 'pa-server.json'))).toBe(true);
  });
});

describe('Grafana dashboard', () => {
  const dashboard = JSON.parse(fs.readFileSync(path.join(DOCKER, 'grafana/dashboards/pa-server.json'), 'utf8'));
  const datasourceUid = readYaml('grafana/provisioning/datasources/prometheus.yaml').datasources[0].uid;
  const exprs: { panel: string; expr: string }[] = dashboard.panels.flatMap((p: any) => p.targets.map((t: any) => ({ panel: p.title, expr: t.expr })));

  it('every metric a query names is in the registry, as a histogram where it reads buckets, grouped by labels it has', async () => {
    const all = await registryLabels();
    for (const { panel, expr } of exprs) {
      const names = metricNames(expr);
      expect(names.length, `${panel}: ${expr}`).toBeGreaterThan(0);
      for (const { name, suffix } of names) {
        expect(all.has(name), `${panel}: ${name} is not a registered metric`).toBe(true);
        if (suffix) expect(instrumentKind.get(name), `${panel}: ${name}${suffix}`).toBe('Histogram');
        // Prometheus adds the target labels instance and job to every series it scrapes.
        const allowed = new Set([...(declaredLabels.get(name) ?? []), ...(suffix === '_bucket' ? ['le'] : []), 'instance', 'job']);
        for (const label of byLabels(expr)) expect(allowed, `${panel}: ${name} has no label ${label}`).toContain(label);
      }
    }
  });

  it('has the panels the issue asks for, on the provisioned data source', () => {
    const uses = (pattern: RegExp) => exprs.some(({ expr }) => pattern.test(expr));
    expect(uses(/rate\(pa_requests_total\[/)).toBe(true); // request rate
    expect(uses(/histogram_quantile\(0\.99, sum by \(le[^)]*\) \(rate\(pa_request_duration_seconds_bucket/)).toBe(true); // latency quantiles
    expect(uses(/pa_queue_size/)).toBe(true); // queue size
    expect(uses(/pa_batch_rows/)).toBe(true); // batch rows
    expect(uses(/sum by \(le, scorer, role\) \(rate\(pa_inference_duration_seconds_bucket/)).toBe(true); // inference time per role
    for (const panel of dashboard.panels) expect(panel.datasource.uid, panel.title).toBe(datasourceUid);
  });
});

describe('docker/k8s', () => {
  const deployment = readYamlDocs('k8s/deployment.yaml')[0];
  const containers: any[] = deployment.spec.template.spec.containers;
  const server = containers.find((c) => c.name === 'pa-server');

  it('the Deployment runs the service as a sidecar beside an agent', () => {
    expect(deployment.kind).toBe('Deployment');
    expect(containers.map((c) => c.name).sort()).toEqual(['agent', 'pa-server']);
    expect(server.image).toBe(IMAGE);
    const agentUrl = containers.find((c) => c.name === 'agent').env.find((e: any) => e.name === 'PA_URL').value;
    expect(agentUrl).toBe(`http://127.0.0.1:${PORT}`);
  });

  it('port, probes and scrape annotations agree with the code', async () => {
    const http = server.ports.find((p: any) => p.name === 'http');
    expect(http.containerPort).toBe(PORT);
    const env = Object.fromEntries(server.env.map((e: any) => [e.name, e.value]));
    expect(Number(env.PA_PORT)).toBe(PORT);
    expect(env.PA_HOST).toBe('0.0.0.0'); // the kubelet probes the pod IP
    expect(server.livenessProbe.httpGet).toEqual({ path: '/health', port: 'http' });
    expect(server.readinessProbe.httpGet).toEqual({ path: '/ready', port: 'http' });
    expect(server.startupProbe.httpGet).toEqual({ path: '/health', port: 'http' });
    for (const p of ['/health', '/ready']) await expectRoute(p);
    const annotations = deployment.spec.template.metadata.annotations;
    expect(Number(annotations['prometheus.io/port'])).toBe(PORT);
    await expectRoute(annotations['prometheus.io/path']);
    expect(server.resources.requests.cpu).toBeDefined();
    expect(server.resources.limits.memory).toBeDefined();
  });

  it('every PA_* variable is a serve option; the key file is a mounted secret', () => {
    for (const c of containers.filter((c) => c.name === 'pa-server')) {
      for (const e of c.env) if (e.name.startsWith('PA_')) expect(serveEnv, e.name).toContain(e.name);
    }
    const keyFile = server.env.find((e: any) => e.name === 'PA_API_KEY_FILE').value as string;
    const mount = server.volumeMounts.find((m: any) => keyFile.startsWith(`${m.mountPath}/`));
    const volume = deployment.spec.template.spec.volumes.find((v: any) => v.name === mount.name);
    expect(volume.secret.items.map((i: any) => i.path)).toContain(path.basename(keyFile));
  });

  it('the Service selects the pods and targets the named port', () => {
    const service = readYamlDocs('k8s/service.yaml')[0];
    expect(service.kind).toBe('Service');
    for (const [k, v] of Object.entries(service.spec.selector)) expect(deployment.spec.template.metadata.labels[k]).toBe(v);
    expect(service.spec.ports[0]).toEqual(expect.objectContaining({ port: PORT, targetPort: 'http' }));
  });

  it('the HPA scales the Deployment on a pa_ metric that the registry has and the adapter rule exposes', async () => {
    const hpa = readYamlDocs('k8s/hpa.yaml')[0];
    expect(hpa.spec.scaleTargetRef).toEqual({ apiVersion: 'apps/v1', kind: 'Deployment', name: deployment.metadata.name });
    const metricName: string = hpa.spec.metrics[0].pods.metric.name;
    expect(metricName).toMatch(/^pa_/);
    expect((await registryLabels()).has(metricName)).toBe(true);
    const adapter = YAML.parse(readYamlDocs('k8s/prometheus-adapter.yaml')[0].data['config.yaml']);
    const rule = adapter.rules.find((r: any) => r.name.as === metricName);
    expect(rule.seriesQuery).toMatch(new RegExp(`^${metricName}\\{`));
  });
});
